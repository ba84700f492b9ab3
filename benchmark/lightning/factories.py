"""Build Lightning trainers and loggers from the strategy and logger config groups."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import lightning as L
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from benchmark.config import LoggerConfig, StrategyConfig
from benchmark.lightning.progress import StepProgressBar
from benchmark.metrics.catalog import declared_keys


# Keys outside the metric declarations: the privacy record and the timings (the last value).
# W&B allows a glob only at the end of a name.
OTHER_SUMMARIES = (("privacy/*", "last"), ("time/*", "last"))


def summary_metrics() -> tuple[tuple[str, str], ...]:
    """(key, W&B summary) per declared metric key (best value: "min"/"max"; descriptive: "last"),
    then the privacy and timing globs, so that run tables sort the right way round."""
    return (*((key.name, key.summary) for key in declared_keys().values()), *OTHER_SUMMARIES)


def define_summary_metrics(experiment) -> None:
    """``define_metric`` for every known metric (no-op on a rank-0-only dummy experiment)."""
    define = getattr(experiment, "define_metric", None)
    if define is None:
        return
    for name, summary in summary_metrics():
        define(name, summary=summary)


def make_logger(cfg: LoggerConfig, output_dir: Path, run_name: str, group: str, tags: list[str],
                resolved_config: dict, job_type: str = "benchmark") -> Optional[Logger]:
    """``wandb`` (online/offline/disabled), ``csv`` or ``none``.

    W&B: one run per job (``run.py`` finishes it), ``group`` the sweep, ``job_type`` the
    stages the job runs, tags method/dataset/epsilon, summaries defined per metric.
    """
    if cfg.kind == "none":
        return None
    if cfg.kind == "csv":
        return CSVLogger(save_dir=str(output_dir), name="csv", version="")
    if cfg.kind == "wandb":
        mode = cfg.mode
        if mode == "online" and not (os.environ.get("WANDB_API_KEY") or Path.home().joinpath(".netrc").exists()):
            mode = "offline"  # no account configured: keep the run locally, `wandb sync` later
        os.environ.setdefault("WANDB_START_METHOD", "thread")
        logger = WandbLogger(project=cfg.project, entity=cfg.entity, name=run_name, group=group, tags=tags,
                             save_dir=str(output_dir), offline=(mode == "offline"), mode=mode,
                             config=resolved_config, job_type=job_type)
        if mode != "disabled":
            define_summary_metrics(logger.experiment)
        return logger
    raise ValueError(f"logger.kind={cfg.kind!r}; choose wandb, csv or none")


def make_trainer_factory(strategy: StrategyConfig, logger: Optional[Logger], output_dir: Path):
    """A function building Trainers that share the strategy, logger and output folder."""

    def make_trainer(max_steps: int = -1, stage: str = "adapt", **overrides) -> L.Trainer:
        kwargs = dict(
            accelerator=strategy.accelerator, devices=strategy.devices, num_nodes=strategy.num_nodes,
            strategy=strategy.strategy, precision=strategy.precision, max_steps=max_steps,
            logger=logger if logger is not None else False, default_root_dir=str(output_dir / stage),
            enable_checkpointing=False, enable_model_summary=False, log_every_n_steps=10,
            num_sanity_val_steps=0, deterministic=False,
            accumulate_grad_batches=strategy.accumulate_grad_batches, gradient_clip_val=strategy.gradient_clip_val,
        )
        kwargs.update(overrides)
        if kwargs.get("enable_progress_bar", True) and "callbacks" not in kwargs:
            kwargs["callbacks"] = [StepProgressBar()]  # Lightning refuses a bar callback when bars are off
        return L.Trainer(**kwargs)

    return make_trainer
