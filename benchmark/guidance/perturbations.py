"""Prompt and embedding perturbations against memorization (METHODS.md), one strength knob each.

- ``rna`` / ``rt`` / ``cwr`` (Somepalli et al., NeurIPS 2023): insert ``k`` random
  numbers / random vocabulary tokens / repeated caption words at random positions.
- ``gni``: add ``lambda N(0, I)`` to the conditional and unconditional text embeddings.

Every random choice is drawn from a generator seeded by the image's own seed, so an
image does not depend on the batch it is sampled in. At strength 0 (``k = 0``,
``scale = 0``) each samples exactly as ``guidance=none``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from benchmark.config import ConfigError, SamplerConfig
from benchmark.guidance.base import Calibration, GuidanceMethod, SamplingContext
from benchmark.sampling.plan import SampleItem
from benchmark.sampling.sampler import Guidance, GuidanceInputs, cfg_predictions, combine, noise_magnitude

_SALT = 0x5EED  # keeps the perturbations' draws apart from the image's initial noise
KINDS = ("rna", "rt", "cwr")


class EmbeddingOverrideGuidance(Guidance):
    """Plain CFG with per-image text embeddings chosen per batch (None: the sampler's own)."""

    cond = uncond = None

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        cond = self.cond.to(x.cond) if self.cond is not None else x.cond
        uncond = self.uncond.to(x.uncond) if self.uncond is not None else x.uncond
        eps_u, eps_c = cfg_predictions(unet, x.latents, x.timestep, cond, uncond)
        if x.step_index == 0:
            self.stats["first_step_magnitude"] = noise_magnitude(eps_c, eps_u).cpu()
        return combine(eps_u, eps_c, x.guidance_scale)


def perturb_prompt(text: str, kind: str, k: int, rng: np.random.Generator, vocabulary: list[str]) -> str:
    """Insert ``k`` random numbers (rna), vocabulary tokens (rt) or caption words (cwr) at random positions."""
    words = text.split()
    source = list(words)
    for _ in range(k):
        if kind == "rna":
            new = str(int(rng.integers(0, 1000)))
        elif kind == "rt":
            new = vocabulary[int(rng.integers(len(vocabulary)))]
        elif kind == "cwr":
            if not source:
                return text
            new = source[int(rng.integers(len(source)))]
        else:
            raise ValueError(f"unknown prompt perturbation {kind!r}")
        words.insert(int(rng.integers(len(words) + 1)), new)
    return " ".join(words)


class PromptPerturbationGuidance(EmbeddingOverrideGuidance):
    name = "prompt_perturbation"

    def __init__(self, encode: Callable[[list[str]], torch.Tensor], kind: str, k: int, vocabulary: list[str]):
        self.encode, self.kind, self.k, self.vocabulary = encode, kind, k, vocabulary

    def start(self, items: list[SampleItem]) -> None:
        self.stats, self.uncond = {}, None
        self.perturbed = [perturb_prompt(it.text, self.kind, self.k, np.random.default_rng([it.seed, _SALT]),
                                         self.vocabulary) for it in items]
        self.cond = self.encode(self.perturbed)


class GaussianEmbeddingNoiseGuidance(EmbeddingOverrideGuidance):
    name = "gni"

    def __init__(self, scale: float):
        self.scale = scale

    def start(self, items: list[SampleItem]) -> None:
        self.stats, self.seeds = {}, [it.seed for it in items]
        self.cond = self.uncond = None

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        if x.step_index == 0:  # one draw per image, kept for the whole trajectory
            noise = [torch.randn((2, *x.cond.shape[1:]), generator=torch.Generator().manual_seed(s * 7 + _SALT))
                     for s in self.seeds]
            noise = torch.stack(noise).to(x.cond)
            self.cond = x.cond + self.scale * noise[:, 0]
            self.uncond = x.uncond + self.scale * noise[:, 1]
        return super().noise_prediction(unet, x)


def tokenizer_words(tokenizer) -> list[str]:
    """Plain vocabulary entries (no special tokens, BPE end-of-word marks stripped)."""
    special = set(tokenizer.all_special_tokens)
    words = []
    for token in sorted(tokenizer.get_vocab()):
        if token in special or token.startswith("<|") or token.startswith("<") and token.endswith(">"):
            continue
        word = token.replace("</w>", "")
        if word.isalpha():
            words.append(word)
    return sorted(set(words))


@dataclass
class PromptPerturbationMethod(GuidanceMethod):
    """``guidance=rna|rt|cwr``; strength knob ``k`` (tokens inserted)."""

    kind: str
    k: int

    def check(self, sampler: SamplerConfig) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"guidance.kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 0:
            raise ConfigError(f"guidance.k must be an integer >= 0, got {self.k!r}")

    def guidance(self, ctx: SamplingContext, calibration: Calibration) -> Guidance:
        vocabulary = tokenizer_words(ctx.backbone.tokenizer) if self.kind == "rt" else []
        return PromptPerturbationGuidance(ctx.backbone.encode_prompts, self.kind, self.k, vocabulary)


@dataclass
class GaussianEmbeddingNoiseMethod(GuidanceMethod):
    """``guidance=gni``; strength knob ``scale`` (lambda)."""

    scale: float

    def check(self, sampler: SamplerConfig) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, numbers.Real) or not 0 <= self.scale < math.inf:
            raise ConfigError(f"guidance.scale must be a finite number >= 0, got {self.scale!r}")

    def guidance(self, ctx: SamplingContext, calibration: Calibration) -> Guidance:
        return GaussianEmbeddingNoiseGuidance(float(self.scale))
