"""Memorization-mitigation baselines (METHODS.md), each with one strength knob.

- ``pe`` (Wen et al., ICLR 2024): at the first step, optimise the prompt embedding with
  AdamW (lr 0.05, at most 10 iterations) to lower ``m_T``, each image stopping once its
  loss is below ``target_loss``; then plain CFG with the optimised embedding.
- ``rna`` / ``rt`` / ``cwr`` (Somepalli et al., NeurIPS 2023): insert ``k`` random
  numbers / random vocabulary tokens / repeated caption words at random positions.
- ``gni``: add ``lambda N(0, I)`` to the conditional and unconditional text embeddings.

Every random choice is drawn from a generator seeded by the image's own seed, so an
image does not depend on the batch it is sampled in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import numpy as np
import torch

from benchmark.config import ConfigError
from benchmark.guidance.calibration import GuidanceMethod
from benchmark.sampling.sampler import Guidance, GuidanceInputs, noise_magnitude

_SALT = 0x5EED  # keeps the baselines' draws apart from the image's initial noise


def _cfg(unet, x: GuidanceInputs, cond: torch.Tensor, uncond: torch.Tensor):
    eps_u, eps_c = unet(torch.cat([x.latents, x.latents]), x.timestep,
                        encoder_hidden_states=torch.cat([uncond, cond])).sample.chunk(2)
    return eps_u, eps_c, eps_u + x.guidance_scale * (eps_c - eps_u)


class EmbeddingOverrideGuidance(Guidance):
    """Plain CFG with per-image text embeddings chosen in ``start`` (subclasses set them)."""

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        cond = self.cond.to(x.cond) if self.cond is not None else x.cond
        uncond = self.uncond.to(x.uncond) if self.uncond is not None else x.uncond
        eps_u, eps_c, eps = _cfg(unet, x, cond, uncond)
        if x.step_index == 0:
            self.stats["first_step_magnitude"] = noise_magnitude(eps_c, eps_u).cpu()
        return eps


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

    def start(self, batch: dict) -> None:
        self.stats, self.uncond = {}, None
        texts = [perturb_prompt(p, self.kind, self.k, np.random.default_rng([int(s), _SALT]), self.vocabulary)
                 for p, s in zip(batch["prompt"], batch["seed"].tolist())]
        self.perturbed = texts
        self.cond = self.encode(texts)


class GaussianEmbeddingNoiseGuidance(EmbeddingOverrideGuidance):
    name = "gni"

    def __init__(self, scale: float):
        self.scale = scale

    def start(self, batch: dict) -> None:
        self.stats, self.seeds = {}, [int(s) for s in batch["seed"].tolist()]
        self.cond = self.uncond = None

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        if x.step_index == 0:  # one draw per image, kept for the whole trajectory
            noise = [torch.randn((2, *x.cond.shape[1:]), generator=torch.Generator().manual_seed(s * 7 + _SALT))
                     for s in self.seeds]
            noise = torch.stack(noise).to(x.cond)
            self.cond = x.cond + self.scale * noise[:, 0]
            self.uncond = x.uncond + self.scale * noise[:, 1]
        return super().noise_prediction(unet, x)


class PromptEmbeddingOptimisation(Guidance):
    """Wen et al.'s mitigation: minimise ``m_T`` over the prompt embedding at the first step."""

    name = "pe"

    def __init__(self, target_loss: float, lr: float, max_iterations: int):
        self.target, self.lr, self.max_iterations = target_loss, lr, max_iterations

    def start(self, batch: dict) -> None:
        self.stats, self.cond = {}, None

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        if x.step_index == 0:
            self.cond = self.optimise(unet, x)
        eps_u, eps_c, eps = _cfg(unet, x, self.cond, x.uncond)
        return eps

    def optimise(self, unet, x: GuidanceInputs) -> torch.Tensor:
        # Lightning predicts under inference_mode, whose tensors cannot enter autograd: leave it
        # and work on ordinary copies.
        with torch.inference_mode(False):
            return self._optimise(unet, x.latents.clone(), x.timestep.clone(), x.cond.clone(), x.uncond.clone())

    def _optimise(self, unet, latents, timestep, cond, uncond) -> torch.Tensor:
        with torch.no_grad():
            eps_u = unet(latents, timestep, encoder_hidden_states=uncond).sample
        emb = cond.detach().clone().float().requires_grad_(True)
        opt = torch.optim.AdamW([emb], lr=self.lr)
        frozen = torch.zeros(len(emb), dtype=torch.bool, device=emb.device)
        iterations = torch.zeros(len(emb), dtype=torch.long)
        first = None
        with torch.enable_grad():
            for it in range(self.max_iterations + 1):
                eps_c = unet(latents, timestep, encoder_hidden_states=emb.to(cond.dtype)).sample
                loss = noise_magnitude(eps_c, eps_u)
                if first is None:
                    first = loss.detach().cpu()
                frozen |= loss.detach() <= self.target  # an image stops once below the target
                if it == self.max_iterations or bool(frozen.all()):
                    break
                before = emb.detach().clone()
                # The loss is a sum of per-image terms and AdamW is element-wise: images stay independent.
                (grad,) = torch.autograd.grad((loss * (~frozen)).sum(), emb)
                emb.grad = grad
                opt.step()
                opt.zero_grad(set_to_none=True)
                with torch.no_grad():  # frozen rows must not drift with momentum or weight decay
                    emb[frozen] = before[frozen]
                iterations[(~frozen).cpu()] += 1
        self.stats = {"first_step_magnitude": first, "triggered": first > self.target,
                      "optimised_magnitude": loss.detach().cpu(), "pe_iterations": iterations}
        return emb.detach().to(cond.dtype)


@dataclass
class PromptEmbeddingOptimisationMethod(GuidanceMethod):
    """``guidance=pe``; strength knob ``target_loss`` (lower: stronger)."""

    name: str = "pe"
    target_loss: Union[float, str] = "auto"
    lr: float = 0.05
    max_iterations: int = 10
    calibration_prompts: list | None = None
    calibration_images: int = 64

    threshold_keys = (("target_loss", 3.0, "q0.95"),)

    def guidance(self) -> Guidance:
        if int(self.max_iterations) < 0 or float(self.lr) <= 0:
            raise ConfigError("guidance.max_iterations must be >= 0 and guidance.lr > 0")
        return PromptEmbeddingOptimisation(self.thresholds["target_loss"], float(self.lr), int(self.max_iterations))


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

    name: str = "rna"
    kind: str = "rna"
    k: int = 4

    def guidance(self) -> Guidance:
        if self.kind not in ("rna", "rt", "cwr"):
            raise ConfigError(f"guidance.kind must be rna, rt or cwr; got {self.kind!r}")
        if int(self.k) < 0:
            raise ConfigError(f"guidance.k must be >= 0, got {self.k!r}")
        backbone = self.encoder()
        vocabulary = tokenizer_words(backbone.tokenizer) if self.kind == "rt" else []
        return PromptPerturbationGuidance(backbone.encode_prompts, self.kind, int(self.k), vocabulary)


@dataclass
class GaussianEmbeddingNoiseMethod(GuidanceMethod):
    """``guidance=gni``; strength knob ``scale`` (lambda)."""

    name: str = "gni"
    scale: float = 0.1

    def guidance(self) -> Guidance:
        if float(self.scale) < 0:
            raise ConfigError(f"guidance.scale must be >= 0, got {self.scale!r}")
        return GaussianEmbeddingNoiseGuidance(float(self.scale))
