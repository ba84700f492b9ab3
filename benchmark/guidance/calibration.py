"""Thresholds of the guidance methods, absolute or calibrated on non-memorized prompts.

A threshold is either a number (absolute, in the model's magnitude units) or a quantile
spec ``"q0.95"`` (the 0.95-quantile of the calibration magnitudes) or ``"2.5q0.95"``
(2.5 times it) **[ours]**: the offline world's magnitudes differ in scale from SD's, so
quantiles transfer across models where absolute values do not. ``"auto"`` picks the
method's official absolute value on real models and its world spec on the offline world.

Calibration samples the calibration prompts with plain CFG and the run's own sampler
settings, with seeds disjoint from every evaluation seed (:func:`calibration_seed`).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from benchmark.config import ConfigError, SamplerConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.guidance.base import Calibration, GuidanceMethod, SamplingContext
from benchmark.models.backbone import Backbone
from benchmark.sampling.attention import EndTokenCapture, MaskRecordingCFG
from benchmark.sampling.plan import calibration_seed, items_for_texts
from benchmark.utils.checks import check_positive
from benchmark.sampling.sampler import GuidanceInputs, noise_magnitude, sample_latents

_QUANTILE = re.compile(r"^\s*(?:(\d*\.?\d+)\s*\*?\s*)?q\s*(\d*\.?\d+)\s*$")


def parse_threshold(value, key: str) -> tuple[str, float, float]:
    """``1.5`` -> ("absolute", 1.5, 1); ``"2q0.9"`` -> ("quantile", 0.9, 2.0). Errors name the key."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value or value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value!r}")
        return "absolute", float(value), 1.0
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None:
            return parse_threshold(number, key)
        m = _QUANTILE.match(value)
        if m:
            level, mult = float(m.group(2)), float(m.group(1) or 1.0)
            if not 0.0 <= level <= 1.0:
                raise ConfigError(f"{key}={value!r}: the quantile level must be in [0, 1]")
            return "quantile", level, mult
    raise ConfigError(f"{key} must be a number, a quantile 'q0.95' or a multiple of one '2q0.95'; got {value!r}")


@dataclass(frozen=True)
class Magnitudes:
    """Magnitudes of non-memorized prompts under plain CFG: at the first step, and at every step;
    with a BE capture also the masked first-step magnitudes (Bright Ending's thresholds)."""

    first_step: torch.Tensor
    all_steps: torch.Tensor
    first_step_masked: Optional[torch.Tensor] = None

    def resolve(self, value, key: str, every_step: bool = False, masked: bool = False) -> float:
        kind, level, mult = parse_threshold(value, key)
        if kind == "absolute":
            return level
        pool = self.all_steps if every_step else self.first_step_masked if masked else self.first_step
        return float(mult * torch.quantile(pool.double(), level))


class _RecordingGuidance(MaskRecordingCFG):
    """Plain CFG (the ``none`` computation) that keeps every step's magnitude (and BE masks if capturing)."""

    def start(self, items) -> None:
        super().start(items)
        self.per_step: list[torch.Tensor] = []

    def observe(self, x: GuidanceInputs, eps_u: torch.Tensor, eps_c: torch.Tensor) -> None:
        self.per_step.append(noise_magnitude(eps_c, eps_u).cpu())


@contextmanager
def _on_device(backbone: Backbone, device):
    """The text encoder and UNet on ``device`` for the block, and back where they were after."""
    before = [(m, next(m.parameters()).device) for m in (backbone.text_encoder, backbone.unet)]
    for module, _ in before:
        module.to(device)
    try:
        yield
    finally:
        for module, where in before:
            module.to(where)


@torch.no_grad()
def record_magnitudes(backbone: Backbone, prompts: list[str], seeds: list[int], sampler: SamplerConfig,
                      device="cpu", capture: Optional[EndTokenCapture] = None) -> Magnitudes:
    """Sample ``prompts`` with plain CFG (``sampler``'s settings) and collect their noise magnitudes
    (and, with ``capture``, their BE-masked first-step magnitudes)."""
    rec = _RecordingGuidance(capture)
    first, every, masked = [], [], []
    with _on_device(backbone, device):
        for i in range(0, len(prompts), sampler.batch_size):
            chunk = prompts[i:i + sampler.batch_size]
            cond = backbone.encode_prompts(chunk)
            uncond = backbone.encode_prompts([sampler.negative_prompt] * len(chunk))
            sample_latents(backbone.unet, backbone.scheduler, cond, uncond, seeds[i:i + len(chunk)], sampler,
                           backbone.latent_shape, rec, items_for_texts(chunk, seeds[i:i + len(chunk)]))
            first.append(rec.per_step[0])
            every.append(torch.cat(rec.per_step))
            if capture is not None:
                masked.append(rec.batch_stats()["first_step_masked_magnitude"])
    return Magnitudes(torch.cat(first), torch.cat(every), torch.cat(masked) if masked else None)


@dataclass
class ThresholdedGuidance(GuidanceMethod):
    """A guidance method with thresholds (``AUTO`` lists them) that may be calibrated quantiles."""

    calibration_prompts: Optional[list]  # None: the dataset's non-memorized prompts
    calibration_images: int

    # (field, official absolute value on real models, offline-world spec) of each threshold;
    # the values "auto" stands for (METHODS.md; the world specs from results/prss_tiny_world.md).
    AUTO: ClassVar[tuple[tuple[str, float, str], ...]] = ()
    # Thresholds compared with a magnitude at every step: calibrated on every step's magnitudes.
    EVERY_STEP: ClassVar[tuple[str, ...]] = ()

    def check(self, sampler: SamplerConfig) -> None:
        super().check(sampler)
        check_positive(self.calibration_images, "guidance.calibration_images", integer=True)
        absolute = {}
        for key, _, _ in self.AUTO:
            value = getattr(self, key)
            if value != "auto":
                kind, level, _ = parse_threshold(value, f"guidance.{key}")
                if kind == "absolute":
                    absolute[key] = level
        self.check_thresholds(absolute)  # what can be checked before calibration

    def check_thresholds(self, thresholds: dict[str, float]) -> None:
        """Refuse inconsistent thresholds (ConfigError naming the keys); ``thresholds`` may hold only some keys."""

    def capture(self, backbone: Backbone) -> Optional[EndTokenCapture]:
        """Bright Ending variants: the BE capture; their first-step thresholds are then quantiles of
        the masked first-step magnitudes (every-step ones stay global). None: no masking."""
        return None

    def threshold_specs(self, is_world: bool) -> dict[str, object]:
        """Each threshold's spec with "auto" replaced by the official value or the world's spec."""
        specs = {}
        for key, official, world in self.AUTO:
            value = getattr(self, key)
            specs[key] = (world if is_world else official) if value == "auto" else value
            parse_threshold(specs[key], f"guidance.{key}")
        return specs

    def calibration_prompt_list(self, data: BenchmarkDataset) -> list[str]:
        """``calibration_images`` prompts cycled from ``calibration_prompts`` or the non-memorized prompts."""
        base = list(self.calibration_prompts) if self.calibration_prompts else \
            [p.text() for p in data.prompts if p.memorized is False]
        if not base:
            raise ConfigError(f"guidance={self.name}: a quantile threshold needs non-memorized prompts to calibrate "
                              "on; the dataset has no prompt with memorized: false and guidance.calibration_prompts "
                              "is empty")
        return [base[i % len(base)] for i in range(self.calibration_images)]

    def calibrates(self, is_world: bool) -> bool:
        """True when a threshold is a quantile (given, or what "auto" means on this model)."""
        return any(parse_threshold(v, k)[0] == "quantile" for k, v in self.threshold_specs(is_world).items())

    def calibrate(self, ctx: SamplingContext) -> Calibration:
        """Resolve every threshold; samples ``calibration_images`` images only if one is a quantile."""
        is_world = ctx.backbone.world_dir is not None
        specs = self.threshold_specs(is_world)
        magnitudes, images = Magnitudes(torch.zeros(0), torch.zeros(0)), 0
        if self.calibrates(is_world):
            prompts = self.calibration_prompt_list(ctx.data)
            seeds = [calibration_seed(ctx.seed, i) for i in range(len(prompts))]
            capture = self.capture(ctx.backbone)
            magnitudes = record_magnitudes(ctx.backbone, prompts, seeds, ctx.sampler, ctx.device, capture)
            images = len(prompts)
        thresholds = {k: magnitudes.resolve(v, f"guidance.{k}", every_step=k in self.EVERY_STEP,
                                            masked=magnitudes.first_step_masked is not None)
                      for k, v in specs.items()}
        self.check_thresholds(thresholds)
        return Calibration(thresholds, images)
