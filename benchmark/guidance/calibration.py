"""The guidance family: how each denoising step is guided (plain CFG, PRSS, PE, ...).

A guidance method adapts nothing. Before sampling, :meth:`GuidanceMethod.calibrate`
keeps the backbone (its guidance may encode new prompts) and, when a threshold is given
as a quantile, calibrates it on the magnitudes of non-memorized prompts.

A threshold is either a number (absolute, in the model's magnitude units) or a quantile
spec ``"q0.95"`` (the 0.95-quantile of the calibration magnitudes) or ``"2.5q0.95"``
(2.5 times it) **[ours]**: the offline world's magnitudes differ in scale from SD's, so
quantiles transfer across models where absolute values do not. ``"auto"`` picks the
method's official absolute value on real models and its world value on the offline world.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import torch

from benchmark.config import ConfigError, SamplerConfig, default_config
from benchmark.data.datasets import BenchmarkDataset
from benchmark.models.backbone import Backbone
from benchmark.sampling.sampler import Guidance, GuidanceInputs, noise_magnitude, sample_latents

_QUANTILE = re.compile(r"^\s*(?:(\d*\.?\d+)\s*\*?\s*)?q\s*(\d*\.?\d+)\s*$")


def parse_threshold(value, key: str) -> tuple[str, float, float]:
    """``1.5`` -> ("absolute", 1.5, 1); ``"2q0.9"`` -> ("quantile", 0.9, 2.0). Errors name the key."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value or value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value!r}")
        return "absolute", float(value), 1.0
    if isinstance(value, str):
        try:
            return "absolute", float(value), 1.0
        except ValueError:
            pass
        m = _QUANTILE.match(value)
        if m:
            level, mult = float(m.group(2)), float(m.group(1) or 1.0)
            if not 0.0 <= level <= 1.0:
                raise ConfigError(f"{key}={value!r}: the quantile level must be in [0, 1]")
            return "quantile", level, mult
    raise ConfigError(f"{key} must be a number, a quantile 'q0.95' or a multiple of one '2q0.95'; got {value!r}")


@dataclass
class Calibration:
    """Magnitudes of non-memorized prompts under plain CFG: at the first step, and at every step."""

    first_step: torch.Tensor
    all_steps: torch.Tensor

    def resolve(self, value, key: str, every_step: bool = False) -> float:
        kind, level, mult = parse_threshold(value, key)
        if kind == "absolute":
            return level
        pool = self.all_steps if every_step else self.first_step
        return float(mult * torch.quantile(pool.double(), level))


class _RecordingGuidance(Guidance):
    """Plain CFG that keeps every step's magnitude (calibration only)."""

    def start(self, batch):
        super().start(batch)
        self.per_step = []

    def noise_prediction(self, unet, x: GuidanceInputs):
        latents, embeds = torch.cat([x.latents, x.latents]), torch.cat([x.uncond, x.cond])
        eps_u, eps_c = unet(latents, x.timestep, encoder_hidden_states=embeds).sample.chunk(2)
        self.per_step.append(noise_magnitude(eps_c, eps_u).cpu())
        return eps_u + x.guidance_scale * (eps_c - eps_u)


@torch.no_grad()
def calibrate(backbone: Backbone, prompts: list[str], seeds: list[int], sampler: SamplerConfig) -> Calibration:
    """Sample ``prompts`` with plain CFG and collect their noise magnitudes."""
    rec = _RecordingGuidance()
    first, every = [], []
    for i in range(0, len(prompts), sampler.batch_size):
        chunk = prompts[i:i + sampler.batch_size]
        cond, uncond = backbone.encode_prompts(chunk), backbone.encode_prompts([""] * len(chunk))
        sample_latents(backbone.unet, backbone.scheduler, cond, uncond, seeds[i:i + len(chunk)], sampler,
                       backbone.latent_shape, rec, {})
        first.append(rec.per_step[0])
        every.append(torch.cat(rec.per_step))
    return Calibration(torch.cat(first), torch.cat(every))


class GuidanceMethod:
    """A guidance method (``guidance=...``); the base is plain classifier-free guidance.

    Subclasses with thresholds set ``threshold_keys`` and build their per-step rule in
    :meth:`guidance`.
    """

    name = "none"
    # (config attribute, official absolute default, offline-world default) for "auto".
    threshold_keys: tuple[tuple[str, float, str], ...] = ()
    calibration_prompts: Optional[list[str]] = None
    calibration_images: int = 64

    def check_sampler(self, sampler: SamplerConfig) -> None:
        # Called before calibrate: calibration samples with the run's own sampler settings.
        self._sampler = sampler

    def threshold_spec(self, key: str, official: float, world: str, is_world: bool):
        value = getattr(self, key)
        if value == "auto":
            return world if is_world else official
        parse_threshold(value, f"guidance.{key}")
        return value

    def calibrate(self, backbone: Backbone, data: BenchmarkDataset, seed: int) -> dict:
        """Resolve the thresholds (sampling calibration prompts if one is a quantile); returns metrics."""
        self._backbone, self._data, self._seed = backbone, data, seed
        is_world = backbone.world_dir is not None
        specs = {k: self.threshold_spec(k, off, world, is_world) for k, off, world in self.threshold_keys}
        needs_calibration = any(parse_threshold(v, k)[0] == "quantile" for k, v in specs.items())
        metrics = {}
        calibration = Calibration(torch.zeros(0), torch.zeros(0))
        if needs_calibration:
            prompts = self.calibration_prompt_list(data)
            # Seeds far from the evaluation seeds (seed * 1_000_003 + i): calibration never sees an eval draw.
            seeds = [seed * 1_000_003 + 700_000 + i for i in range(len(prompts))]
            calibration = calibrate(backbone, prompts, seeds, getattr(self, "_sampler", default_config(SamplerConfig)))
            metrics["guidance/calibration_images"] = len(prompts)
        self.thresholds = {k: calibration.resolve(v, f"guidance.{k}", every_step=k in self.every_step_keys)
                           for k, v in specs.items()}
        self.validate_thresholds(self.thresholds)
        metrics.update({f"guidance/{k}": v for k, v in self.thresholds.items()})
        return metrics

    every_step_keys: tuple[str, ...] = ()

    def validate_thresholds(self, thresholds: dict[str, float]) -> None:
        """Subclasses refuse inconsistent thresholds (ConfigError naming the keys)."""

    def calibration_prompt_list(self, data: BenchmarkDataset) -> list[str]:
        """Non-memorized prompts: ``calibration_prompts`` if given, else the dataset's control prompts."""
        if self.calibration_prompts:
            base = list(self.calibration_prompts)
        else:
            base = [p.text() for p in data.prompts if p.memorized is False]
        if not base:
            raise ConfigError(f"method={self.name}: a quantile threshold needs non-memorized prompts to calibrate "
                              "on; the dataset has no prompt with memorized: false and guidance.calibration_prompts "
                              "is empty")
        if int(self.calibration_images) <= 0:
            raise ConfigError(f"guidance.calibration_images must be a positive integer, got {self.calibration_images!r}")
        # Cycle the prompts (each with its own seed) up to the requested number of images.
        return [base[i % len(base)] for i in range(int(self.calibration_images))]

    def guidance(self) -> Guidance:
        return Guidance()

    def encoder(self):
        if not hasattr(self, "_backbone"):
            raise RuntimeError(f"method={self.name}: guidance() called before adapt()")
        return self._backbone
