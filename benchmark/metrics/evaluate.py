"""Evaluate a run's generations with the metrics ``eval.metrics`` lists, in that order.

``metrics.json`` gets ``eval/num_images`` and then each metric's values; a metric that
cannot apply to the run (no CLIP model, not an offline world, a guidance without the
statistic) is skipped with its reason logged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import torch

import benchmark.metrics.catalog  # noqa: F401  (registers the suite's metrics)
from benchmark.config import ConfigError, EvalConfig, ModelConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.metrics.base import Metric, get_metric
from benchmark.metrics.context import EvalContext
from benchmark.sampling.generations import Generations

log = logging.getLogger(__name__)


def build_metrics(names: Sequence[str]) -> list[Metric]:
    """One instance per configured name, in order; unknown or repeated names are a ConfigError."""
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise ConfigError(f"eval.metrics lists {', '.join(repeated)} more than once")
    return [get_metric(name)() for name in names]


class Evaluator:
    """The configured metrics of one run and their shared context (encoders load on first use)."""

    def __init__(self, model_cfg: ModelConfig, eval_cfg: EvalConfig, world_dir: Optional[Path], seed: int,
                 device: torch.device | str = "cpu"):
        self.metrics = build_metrics(eval_cfg.metrics)  # a typo fails here, before any work
        self.context = EvalContext(model_cfg, eval_cfg, world_dir, seed, torch.device(device))

    def evaluation_only_keys(self) -> list[str]:
        """The configured metrics' keys computed from private images beyond the release."""
        return sorted(k.name for m in self.metrics for k in m.keys if k.reads_private_data)

    def __call__(self, gen: Generations, data: BenchmarkDataset) -> dict[str, float]:
        """``eval/num_images`` and every applicable metric's values (only declared keys)."""
        out: dict[str, float] = {"eval/num_images": len(gen.texts)}
        for metric in self.metrics:
            reason = metric.skip_reason(gen, data, self.context)
            if reason is not None:
                log.info("metric %s skipped: %s", metric.name, reason)
                continue
            values = metric(gen, data, self.context)
            undeclared = sorted(set(values) - {k.name for k in metric.keys})
            if undeclared:
                raise RuntimeError(f"metric {metric.name!r} returned undeclared keys {undeclared}")
            out.update(values)
        return out
