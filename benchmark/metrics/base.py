"""The metric protocol: a metric declares the keys it produces and which way each is better.

A metric is a class with a ``name`` (what ``eval.metrics`` lists), ``keys`` (every key
its ``__call__`` may return, each a :class:`MetricKey`) and
``__call__(generations, data, context) -> {key: value}``. The evaluator refuses a value
under an undeclared key, so the declarations are complete, and W&B summaries and the
report's columns and directions read them instead of spelling metric names again.

This module and :mod:`benchmark.metrics.catalog` import no torch: the report and the
logger set-up read the declarations without loading any model code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Optional

from benchmark.config import ConfigError

if TYPE_CHECKING:  # annotations only
    from benchmark.data.types import BenchmarkDataset
    from benchmark.metrics.context import EvalContext
    from benchmark.sampling.generations import Generations


@dataclass(frozen=True)
class MetricKey:
    """One value a metric reports: its flat key in ``metrics.json`` and what it means."""

    name: str  # e.g. "eval/fid"
    higher_is_better: Optional[bool]  # None: descriptive, neither direction is better
    description: str
    unit: str = ""
    # Computed from private images beyond the release (the adaptation set, the held-out
    # split of the private population): evaluation only, NOT covered by the release's
    # (epsilon, delta). Everything else is a function of the release and public inputs.
    reads_private_data: bool = False

    @property
    def summary(self) -> str:
        """W&B's summary of the key over a run: the best value, or the last for descriptive keys."""
        return {True: "max", False: "min", None: "last"}[self.higher_is_better]


class Metric(ABC):
    """One configured metric. Subclasses set ``name`` and ``keys`` and implement ``__call__``."""

    name: ClassVar[str]
    keys: ClassVar[tuple[MetricKey, ...]]

    def skip_reason(self, generations: Generations, data: BenchmarkDataset, context: EvalContext) -> Optional[str]:
        """Why this metric cannot be computed for this run (logged, no keys written), else None."""
        return None

    @abstractmethod
    def __call__(self, generations: Generations, data: BenchmarkDataset, context: EvalContext) -> dict[str, float]:
        """The metric's values, a subset of ``keys`` (a group with no images is left out)."""


# Written by the evaluator itself, whatever the metrics.
EVALUATOR_KEYS = (MetricKey("eval/num_images", None, "generations evaluated", "images"),)

_METRICS: dict[str, type[Metric]] = {}
# Keys written by a stage of their own rather than by an ``eval.metrics`` metric (the
# membership-inference stage): declared here so directions, W&B summaries and
# ``evaluation_only`` treat them like every metric's keys.
_STAGE_KEYS: dict[str, tuple[MetricKey, ...]] = {}


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Class decorator: make ``cls`` available to ``eval.metrics`` under ``cls.name``.

    Names and keys are unique across every registered metric (one spelling per key).
    """
    if cls.name in _METRICS and _METRICS[cls.name] is not cls:
        raise ValueError(f"metric {cls.name!r} is already registered ({_METRICS[cls.name].__qualname__})")
    taken = {k.name: name for name, other in _METRICS.items() if other is not cls for k in other.keys}
    taken.update({k.name: "the evaluator" for k in EVALUATOR_KEYS})
    taken.update({k.name: f"stage {stage!r}" for stage, keys in _STAGE_KEYS.items() for k in keys})
    for key in cls.keys:
        if key.name in taken:
            raise ValueError(f"metric {cls.name!r} declares {key.name!r}, already declared by {taken[key.name]}")
    _METRICS[cls.name] = cls
    return cls


def register_stage_keys(stage: str, keys: tuple[MetricKey, ...]) -> tuple[MetricKey, ...]:
    """Declare the keys a stage (not an ``eval.metrics`` metric) writes; unique like metrics' keys."""
    taken = {k.name: name for name, cls in _METRICS.items() for k in cls.keys}
    taken.update({k.name: f"stage {other!r}" for other, ks in _STAGE_KEYS.items() if other != stage for k in ks})
    for key in keys:
        if key.name in taken:
            raise ValueError(f"stage {stage!r} declares {key.name!r}, already declared by {taken[key.name]}")
    _STAGE_KEYS[stage] = tuple(keys)
    return _STAGE_KEYS[stage]


def stage_keys(stage: str) -> tuple[MetricKey, ...]:
    """The keys :func:`register_stage_keys` declared for ``stage``."""
    return _STAGE_KEYS[stage]


def metric_names() -> list[str]:
    """Registered metric names, in registration order."""
    return list(_METRICS)


def get_metric(name: str) -> type[Metric]:
    """The metric class of ``name``; an unknown name is a ConfigError listing the choices."""
    try:
        return _METRICS[name]
    except KeyError:
        raise ConfigError(f"eval.metrics: unknown metric {name!r}; choose from {', '.join(metric_names())}") from None


def declared_keys() -> dict[str, MetricKey]:
    """Every key the evaluator can write, by name: its own, every registered metric's and every stage's."""
    keys = {k.name: k for k in EVALUATOR_KEYS}
    for cls in _METRICS.values():
        keys.update({k.name: k for k in cls.keys})
    for stage in _STAGE_KEYS.values():
        keys.update({k.name: k for k in stage})
    return keys
