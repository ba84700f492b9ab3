"""Logger factories, chosen by the logger config's ``_target_`` (``conf/logger/*.yaml``).

Each factory takes its YAML arguments plus ``run`` (:class:`LoggerRun`, what the job
knows: output folder, name, W&B group, tags, job type, resolved config) and returns a
Lightning ``Logger`` or None. A new logger is one function (here or in any importable
module) and one YAML file naming it; no code chooses between loggers by name.

W&B semantics: one run per job (:func:`finish` ends it, marked failed if the job
failed); ``mode: online`` only with an account (``WANDB_API_KEY`` or ``~/.netrc``), else
offline (``wandb sync`` later); ``mode: disabled`` writes nothing (no logger at all).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Optional

from hydra.utils import get_method
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import OmegaConf

from benchmark.lightning.factories import define_summary_metrics


@dataclass(frozen=True)
class LoggerRun:
    """What a job tells its logger; the logger's own settings come from its YAML."""

    output_dir: Path
    name: str
    group: str
    tags: list[str]
    job_type: str
    config: dict  # the resolved run config (W&B: the run's config)


def no_logger(run: LoggerRun) -> None:
    """``logger=none``: metrics.json and the images only."""
    return None


def csv_logger(run: LoggerRun) -> CSVLogger:
    """``logger=csv``: ``<run dir>/csv/metrics.csv``."""
    return CSVLogger(save_dir=str(run.output_dir), name="csv", version="")


class BenchmarkWandbLogger(WandbLogger):
    """A WandbLogger that knows whether the job may upload its sample grid."""

    def __init__(self, *args, log_images: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_images = log_images


def _has_wandb_account() -> bool:
    return bool(os.environ.get("WANDB_API_KEY")) or Path.home().joinpath(".netrc").exists()


def wandb_logger(run: LoggerRun, project: str, entity: Optional[str], mode: str,
                 log_images: bool) -> Optional[BenchmarkWandbLogger]:
    """``logger=wandb`` / ``wandb_offline``: one W&B run per job, summaries defined per metric."""
    if mode == "disabled":
        return None
    if mode == "online" and not _has_wandb_account():
        mode = "offline"  # no account configured: keep the run locally, `wandb sync` later
    os.environ.setdefault("WANDB_START_METHOD", "thread")
    logger = BenchmarkWandbLogger(project=project, entity=entity, name=run.name, group=run.group, tags=run.tags,
                                  save_dir=str(run.output_dir), offline=(mode == "offline"), mode=mode,
                                  config=run.config, job_type=run.job_type, log_images=log_images)
    define_summary_metrics(logger.experiment)
    return logger


def make_logger(cfg: Any, output_dir: Path, run_name: str, group: str, tags: list[str],
                resolved_config: dict, job_type: str = "benchmark") -> Optional[Logger]:
    """The logger that a ``logger`` config (typed or a DictConfig) names by ``_target_``.

    The config's other keys are the factory's arguments; ``run`` is passed as an object
    (``hydra.utils.instantiate`` would turn it into a config node).
    """
    args = asdict(cfg) if is_dataclass(cfg) else OmegaConf.to_container(cfg, resolve=True)
    target = args.pop("_target_", None) if isinstance(args, dict) else None
    if not target:
        raise ValueError(f"a logger config needs a _target_ (a factory in {__name__}); got {cfg!r}")
    run = LoggerRun(Path(output_dir), run_name, group, list(tags), job_type, resolved_config)
    return get_method(target)(run=run, **args)


def log_sample_grid(logger: Optional[Logger], path: Path) -> None:
    """Upload the sample grid (generations only, never training images) where the logger takes images."""
    if getattr(logger, "log_images", False):
        logger.log_image("samples_grid", [str(path)])


def finish(logger: Optional[Logger], succeeded: bool) -> None:
    """End the job's W&B run (one per job), marked failed if the job failed; other loggers need nothing."""
    if isinstance(logger, WandbLogger):
        import wandb

        wandb.finish(exit_code=0 if succeeded else 1)
