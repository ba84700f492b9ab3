"""Build Lightning trainers from the strategy config group (loggers: ``benchmark.lightning.loggers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import lightning as L
from lightning.pytorch.loggers import Logger

from benchmark.config import StrategyConfig
from benchmark.lightning.progress import StepProgressBar


# How W&B summarises each metric of a run, so that run tables sort the right way round
# (lower FID is better, higher accuracy is better). W&B allows a glob only at the end.
SUMMARY_METRICS = (
    ("eval/fid", "min"), ("eval/kid", "min"),
    *((f"eval/{group}_{stat}", "min") for group in ("adapt_set", "memorized")
      for stat in ("fraction_copied", "similarity_mean")),
    ("memorization/*", "min"), ("eval/clip_score", "max"), ("eval/accuracy_*", "max"),
    ("eval/private_style_rate", "max"), ("privacy/*", "last"), ("time/*", "last"),
)


def define_summary_metrics(experiment) -> None:
    """``define_metric`` for every known metric (no-op on a rank-0-only dummy experiment)."""
    define = getattr(experiment, "define_metric", None)
    if define is None:
        return
    for name, summary in SUMMARY_METRICS:
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
