"""``guidance=negative_prompt``: classifier-free guidance away from a configurable negative prompt.

``eps(x, n) + s (eps(x, c) - eps(x, n))`` with ``n`` the embedding of ``negative_prompt``
in place of the empty prompt. The negative prompt is encoded per batch exactly as the
sampler encodes its own unconditional prompt, so ``negative_prompt: ""`` samples bit for
bit as ``guidance=none``. ``first_step_magnitude`` is then measured against ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from benchmark.config import ConfigError, SamplerConfig
from benchmark.guidance.base import Calibration, GuidanceMethod, SamplingContext
from benchmark.sampling.sampler import Guidance, GuidanceInputs


class NegativePromptGuidance(Guidance):
    """Plain CFG whose unconditional branch is ``encode([negative_prompt] * batch)``."""

    name = "negative_prompt"

    def __init__(self, encode, negative_prompt: str):
        self.encode, self.negative_prompt = encode, negative_prompt

    def start(self, items) -> None:
        super().start(items)
        self.uncond = self.encode([self.negative_prompt] * len(items))

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        return super().noise_prediction(unet, replace(x, uncond=self.uncond.to(x.uncond)))


@dataclass
class NegativePrompt(GuidanceMethod):
    """Config (``conf/guidance/negative_prompt.yaml``); overrides ``eval.sampler.negative_prompt``."""

    negative_prompt: str

    def check(self, sampler: SamplerConfig) -> None:
        if not isinstance(self.negative_prompt, str):
            raise ConfigError(f"guidance.negative_prompt must be a string, got {self.negative_prompt!r}")

    def guidance(self, ctx: SamplingContext, calibration: Calibration) -> Guidance:
        return NegativePromptGuidance(ctx.backbone.encode_prompts, self.negative_prompt)
