"""Command line: ``python -m benchmark [group=option ...]`` (Hydra).

Before a job does any work it checks for a finished result: a ``metrics.json`` in its
run directory written for the same resolved config (``config_hash``) means the job is
skipped, so starting an interrupted sweep again (same sweep directory) runs only the
unfinished jobs. ``rerun=true`` runs them anyway.

A job whose guidance has no preset at its ``strength`` (``guidance=none strength=strong``)
is skipped at once (:mod:`benchmark.config.strength`). Composition errors (a mistyped key,
a wrong type) print one line naming the key and exit 1.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict, read_write

import benchmark.config.store  # noqa: F401  (registers the schemas before @hydra.main composes)
from benchmark.config import CONFIG_DIR, ConfigError, StrategyConfig, describe_config_error, to_typed
from benchmark.config.strength import missing_preset
from benchmark.data.types import DatasetError
from benchmark.lightning.console import quiet_console
from benchmark.launch import LauncherPluginMissing, check_launcher_plugin, gpu_lease, sweep_group
from benchmark.models.backbone import ModelLoadError
from benchmark.report.table import format_metrics_table

log = logging.getLogger("benchmark")

# Errors caused by the user's input: report them in one line, not with a traceback.
USER_ERRORS = (ConfigError, DatasetError, ModelLoadError, FileNotFoundError, ValueError)


def _prepare_data_parallel_child_command(cfg: DictConfig, output_dir: Path) -> None:
    """In a multirun, make Lightning's process launcher re-run this *job*, not the sweep.

    Lightning starts the other ranks by re-executing ``sys.argv`` with ``hydra.run.dir``
    of the parent: in a multirun that would be ``-m`` and every sweep value. Give it the
    job's own overrides and its run directory instead.
    """
    from benchmark.lightning.distributed import is_data_parallel

    strategy = to_typed(cfg.strategy, StrategyConfig, "strategy")
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN or not is_data_parallel(strategy):
        return
    # hydra.mode=RUN: an experiment file may set hydra.mode=MULTIRUN, and a rank is one job.
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task, "hydra.mode=RUN"]
    with read_write(hydra_cfg), open_dict(hydra_cfg):
        hydra_cfg.run.dir = str(output_dir)


def _runs_at_budget(cfg: DictConfig) -> bool:
    """False for a non-private method at a finite privacy.epsilon (it cannot meet that budget)."""
    import math

    from benchmark.run import build_method

    try:
        return math.isinf(float(cfg.privacy.epsilon)) or build_method(cfg.method, "method").private
    except USER_ERRORS:
        return True  # run() reports the bad value with its key


def _skip(output_dir: Path, reason: str) -> None:
    """Say once why the job has nothing to run, and leave ``skipped.json`` for the report."""
    from benchmark.utils.io import atomic_write_json

    atomic_write_json(output_dir / "skipped.json", {"reason": reason})
    print(f"skipped ({reason}): {output_dir}")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    quiet_console()  # Hydra has configured the job's logging: one line per event from here on
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    nothing_to_run = missing_preset(cfg)
    if nothing_to_run:  # before importing the pipeline: a skipped point costs nothing
        return _skip(output_dir, nothing_to_run)
    from benchmark.resume import finished_metrics
    from benchmark.run import run

    quiet_console()  # importing Lightning (above) installed its own console handler: route it through ours

    if cfg.get("group") is None and hydra_cfg.mode == RunMode.MULTIRUN:
        with open_dict(cfg):
            cfg.group = sweep_group(hydra_cfg.sweep.dir)  # one W&B group per sweep
    if hydra_cfg.mode == RunMode.MULTIRUN and not _runs_at_budget(cfg):
        # A sweep such as method=dpsgd_ti,ti privacy.epsilon=1,inf: the non-private method
        # has one point, at epsilon=inf. A single run with a finite epsilon is still an error.
        return _skip(output_dir, f"method {cfg.method.name} is not differentially private; it runs only at "
                                 f"privacy.epsilon=inf, not {cfg.privacy.epsilon}")
    done = None if cfg.get("rerun", False) else finished_metrics(output_dir, cfg)
    if done is not None:
        log.info("skipped: %s already has the results of this config (hash %s); rerun=true runs it again",
                 output_dir, done.get("config_hash"))
        print(f"skipped (finished, config hash {done.get('config_hash')}): {output_dir}")
        return
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        _prepare_data_parallel_child_command(cfg, output_dir)
        with gpu_lease(cfg.get("gpu_pool")):
            metrics = run(cfg, output_dir)
    except USER_ERRORS as err:
        log.error("%s: %s", type(err).__name__, err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except SIGTERMException:  # Lightning's stop on SIGTERM is a SystemExit whose code is 0
        log.error("terminated (SIGTERM) before the job finished: %s has no metrics.json", output_dir)
        sys.exit(128 + signal.SIGTERM)  # the shell's code for a job killed by SIGTERM
    if metrics:  # {} on the ranks > 0 of a data-parallel job
        print(format_metrics_table(metrics))
        print(f"results: {output_dir}")


def entry() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_START_METHOD", "thread")
    try:
        check_launcher_plugin(sys.argv[1:])
    except LauncherPluginMissing as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    full_errors = os.environ.get("HYDRA_FULL_ERROR")
    # Let composition errors reach us instead of Hydra's multi-line report, to print one
    # line. Only composition errors: a failure inside a job keeps its traceback.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except (ConfigCompositionException, OverrideParseException) as err:
        if full_errors == "1":
            raise
        print(f"error: {describe_config_error(err)}", file=sys.stderr)
        sys.exit(1)
    finally:
        if full_errors is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_errors


if __name__ == "__main__":
    entry()
