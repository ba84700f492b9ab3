"""Helpers for the sampling and guidance tests: the micro world's backbone and one-batch sampling."""

from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

import torch

from benchmark.config import ModelConfig, SamplerConfig, default_config
from benchmark.models.backbone import Backbone, load_backbone
from benchmark.sampling.plan import items_for_texts
from benchmark.sampling.sampler import Guidance, sample_latents


@lru_cache(maxsize=1)
def micro_backbone() -> Backbone:
    """The micro world's backbone (built into the cache on first use; tests must not modify it)."""
    return load_backbone(default_config(ModelConfig, "model=micro"))


def sampler(steps: int = 4, guidance_scale: float = 4.0, **kw) -> SamplerConfig:
    return default_config(SamplerConfig, num_inference_steps=steps, guidance_scale=guidance_scale, **kw)


def sample(backbone, rule: Optional[Guidance], texts: Sequence[str], seeds: Sequence[int], steps: int = 4,
           paraphrases: Optional[Sequence[Sequence[str]]] = None, unet=None) -> torch.Tensor:
    """Final latents of one batch sampled with ``rule``, unconditional branch the empty prompt."""
    items = items_for_texts(list(texts), list(seeds), paraphrases)
    cond, uncond = backbone.encode_prompts(list(texts)), backbone.encode_prompts([""] * len(texts))
    return sample_latents(unet or backbone.unet, backbone.scheduler, cond, uncond, list(seeds), sampler(steps),
                          backbone.latent_shape, rule, items)


class CountingUNet(torch.nn.Module):
    """The UNet, recording the batch size of every call."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.calls = unet, []

    def forward(self, latents, t, encoder_hidden_states):
        self.calls.append(len(latents))
        return self.unet(latents, t, encoder_hidden_states=encoder_hidden_states)
