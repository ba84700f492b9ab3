"""The guidance family: how each denoising step is guided (plain CFG, PRSS, PE, ...).

A guidance method is a configuration object (``guidance=<name>``, built from its YAML by
``_target_``); it adapts nothing and holds no state. A run uses it in three explicit steps:

1. :meth:`GuidanceMethod.check` with the sampler settings, before anything is loaded:
   a bad setting is a :class:`ConfigError` naming its key (``guidance.lambda_pr``).
2. :meth:`GuidanceMethod.calibrate` with the :class:`SamplingContext`: resolves the
   method's thresholds (sampling calibration prompts when one is a quantile); the run
   times it as ``time/calibrate_s`` and reports :meth:`Calibration.metrics`.
3. :meth:`GuidanceMethod.guidance` with the context and that calibration: the per-step
   rule (:class:`~benchmark.sampling.sampler.Guidance`) the sampler calls.

Guidance is post-processing of whatever the adaptation released: it reads the released
model and the public evaluation prompts only, so it never changes a run's privacy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Union

import torch

from benchmark.config import SamplerConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.models.backbone import Backbone
from benchmark.sampling.sampler import Guidance


@dataclass(frozen=True)
class SamplingContext:
    """Everything a guidance method may use to calibrate and to build its rule."""

    backbone: Backbone  # with the adaptation's artifacts bound (learned tokens, adapters)
    data: BenchmarkDataset  # its evaluation prompts (and their paraphrases, memorized flags)
    sampler: SamplerConfig  # the run's sampler settings: calibration samples with them
    seed: int  # the run's seed: calibration draws its own seeds from it (sampling.plan)
    device: Union[torch.device, str]  # where calibration runs (sampling itself runs on Lightning's device)


@dataclass(frozen=True)
class Calibration:
    """The outcome of :meth:`GuidanceMethod.calibrate`: resolved thresholds, in magnitude units."""

    thresholds: dict[str, float] = field(default_factory=dict)
    images: int = 0  # calibration images sampled (0: every threshold was absolute)

    def __getitem__(self, key: str) -> float:
        return self.thresholds[key]

    def metrics(self) -> dict[str, float]:
        """What the run reports: ``guidance/<threshold>`` and ``guidance/calibration_images``."""
        out = {f"guidance/{k}": float(v) for k, v in self.thresholds.items()}
        if self.images:
            out["guidance/calibration_images"] = self.images
        return out


@dataclass
class GuidanceMethod(ABC):
    """A guidance method's configuration (fields from ``conf/guidance/<name>.yaml``, no defaults here)."""

    name: str

    def check(self, sampler: SamplerConfig) -> None:
        """Refuse settings this method cannot honour with these sampler settings (ConfigError
        naming the key). Reads the config only: called before the backbone loads."""

    def check_backbone(self, backbone: Backbone) -> None:
        """Refuse a backbone this method cannot guide (ConfigError naming the key). Called right
        after the backbone loads, before adaptation, calibration or sampling; the base takes any."""

    def calibrates(self, is_world: bool) -> bool:
        """Whether :meth:`calibrate` samples images on this kind of model (the run's
        ``calibrate`` stage does work); the base has nothing to calibrate."""
        return False

    def calibrate(self, ctx: SamplingContext) -> Calibration:
        """Resolve the method's thresholds; the base has none."""
        return Calibration()

    @abstractmethod
    def guidance(self, ctx: SamplingContext, calibration: Calibration) -> Guidance:
        """The per-step rule, built from ``ctx`` and ``calibration`` alone."""
