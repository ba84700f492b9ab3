"""Membership-inference attacks on an adapted model: one score per candidate image.

Both attacks see only what a holder of the release has: the backbone with the released
artifact bound (the learned embedding written into the text encoder, the LoRA adapter
in the UNet, or nothing for ``method=none``), and, for the similarity attack, the run's
generations. A higher score means "more likely a training image".

* :func:`loss_scores` -- the denoising-loss threshold attack (Carlini et al. 2023,
  "Extracting training data from diffusion models", sec. 6; Duan et al. 2023): the model's
  own denoising loss on the candidate, as its training computes it
  (:func:`benchmark.adapt.textual_inversion.noisy_latents_and_target`: the VAE posterior
  sample, the noise or velocity target), at FIXED timesteps with FIXED draws that are
  identical for every image and every run, so two candidates differ only by the image.
  Score = minus the mean loss.
* :func:`similarity_scores` -- the generation-similarity attack: the largest copy
  similarity (:func:`benchmark.metrics.memorization.max_similarity`) of any generation
  to the candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.adapt.textual_inversion import fill_template, noisy_latents_and_target
from benchmark.metrics.memorization import max_similarity
from benchmark.models.backbone import Backbone


@dataclass(frozen=True)
class LossAttackDraws:
    """The attack's fixed draws: ``K`` (timestep, latent-sample noise, diffusion noise) triples.

    Drawn on the CPU from a public seed, so they are the same on every device and in every
    run (the attack is a fixed function of the image and the model), then moved.
    """

    timesteps: torch.Tensor  # (K,) long
    latent_noise: torch.Tensor  # (K, C, h, w)
    noise: torch.Tensor  # (K, C, h, w)

    @classmethod
    def make(cls, timesteps: list[int], noises_per_timestep: int, latent_shape: tuple[int, ...],
             seed: int) -> "LossAttackDraws":
        gen = torch.Generator().manual_seed(int(seed))
        ts = torch.tensor([t for t in timesteps for _ in range(noises_per_timestep)], dtype=torch.long)
        latent_noise = torch.randn((len(ts), *latent_shape), generator=gen)
        noise = torch.randn((len(ts), *latent_shape), generator=gen)
        return cls(ts, latent_noise, noise)

    def to(self, device: torch.device) -> "LossAttackDraws":
        return LossAttackDraws(self.timesteps.to(device), self.latent_noise.to(device), self.noise.to(device))


def attack_prompts(captions: list[str], template: str, placeholder: str) -> list[str]:
    """The prompt the method trains with, per candidate: ``template`` with the caption and the placeholder."""
    return [fill_template(template, caption, placeholder) for caption in captions]


@torch.no_grad()
def loss_scores(backbone: Backbone, images: torch.Tensor, prompts: list[str], draws: LossAttackDraws,
                device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Minus the mean denoising loss of each candidate over the fixed draws (CPU float64, shape (N,)).

    ``images`` are uint8 NCHW at the model resolution; ``prompts[i]`` conditions image ``i``.
    Everything runs on ``device`` (where the backbone lives).
    """
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    mu, sd = backbone.encode_images(images)
    hidden = backbone.encode_prompts(prompts)  # (N, L, D) on the text encoder's device
    draws = draws.to(device)
    k = len(draws.timesteps)
    losses = torch.empty(len(images), k, dtype=torch.float64)
    # One (candidate, draw) pair per row, in chunks of ``batch_size`` rows.
    pairs = [(i, j) for i in range(len(images)) for j in range(k)]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        ci = torch.tensor([i for i, _ in chunk])
        dj = torch.tensor([j for _, j in chunk], device=device)
        noisy, t, target = noisy_latents_and_target(backbone.scheduler, mu[ci].to(device), sd[ci].to(device),
                                                    draws.latent_noise[dj], draws.noise[dj], draws.timesteps[dj])
        dtype = backbone.unet.dtype
        pred = backbone.unet(noisy.to(dtype), t, encoder_hidden_states=hidden[ci.to(hidden.device)].to(dtype)).sample
        per_pair = F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)
        losses[ci, dj.cpu()] = per_pair.double().cpu()
    return -losses.mean(dim=1)


@torch.no_grad()
def similarity_scores(candidates: torch.Tensor, generations: torch.Tensor, detector: torch.nn.Module,
                      device: torch.device) -> torch.Tensor:
    """Per candidate, the max copy similarity of any generation to it (CPU float64, shape (N,))."""
    sims = max_similarity(candidates.to(device), generations.to(device), detector)
    return sims.double().cpu()
