"""Build Lightning trainers from the strategy config group (loggers: ``benchmark.lightning.loggers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import lightning as L
from lightning.pytorch.loggers import Logger

from benchmark.config import StrategyConfig
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
