"""Membership-inference attacks on an adapted model: one score per candidate image.

The attacks see only what a holder of the release has: the backbone with the released
artifact bound (the learned embedding written into the text encoder, the LoRA adapter
in the UNet, or nothing for ``method=none``), the public pretrained backbone it was
adapted from, and, for the similarity attack, the run's generations. A higher score
means "more likely a training image".

* :func:`loss_scores` -- the denoising-loss threshold attack (Carlini et al. 2023,
  "Extracting training data from diffusion models", sec. 6; Duan et al. 2023): the model's
  own denoising loss on the candidate, as its training computes it
  (:func:`benchmark.adapt.textual_inversion.noisy_latents_and_target`: the VAE posterior
  sample, the noise or velocity target), at FIXED timesteps with FIXED draws that are
  identical for every image and every run, so two candidates differ only by the image.
  Score = minus the mean loss.
* :func:`calibrated_scores` -- the reference-calibrated loss attack (Carlini et al. 2022,
  "Membership inference attacks from first principles"; Watson et al. 2022, "On the
  importance of difficulty calibration in membership inference attacks"): how much lower
  the adapted model's loss is than the pretrained backbone's on the same candidate, same
  prompt and same draws (:func:`reference_loss_scores`), so that how hard an image is for
  any model cancels. Score = reference loss minus adapted loss.
* :func:`similarity_scores` -- the generation-similarity attack: the largest copy
  similarity (:func:`benchmark.metrics.memorization.max_similarity`) of any generation
  to the candidate.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

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
    return _minus_mean_losses(backbone, images, backbone.encode_prompts(prompts), draws, device, batch_size)


@torch.no_grad()
def reference_loss_scores(backbone: Backbone, images: torch.Tensor, prompts: list[str], draws: LossAttackDraws,
                          device: torch.device, batch_size: int, learned_tokens: Sequence[str],
                          initializer_token: str) -> torch.Tensor:
    """:func:`loss_scores` of the public reference model: the backbone with the release unbound.

    The reference is the pretrained backbone as it was before adaptation: every learned
    token of ``learned_tokens`` in ``prompts`` reads its initializer's row (the row its
    training started from: :func:`reference_prompt_states`) and every peft adapter of the
    text encoder and the UNet is off (:func:`adapters_disabled`); the prompts, the draws
    and the batching are those of :func:`loss_scores`.

    Guarantees, stated the way Opacus states its own:

    * The reference scores are a function of public things only (the pretrained weights,
      the initializer token, the method's template, the public draws) and of the
      candidate itself (its image and caption): no private image and no value of the
      released artifact is read. The calibrated attack is therefore a function of the
      release, public data and the candidate, and the release's ``(epsilon, delta)``
      bound on any attack's TPR at a given FPR holds for it as for the raw loss attack.
    * The backbone leaves as it came: adapters on or off and every ``requires_grad`` as
      before, the embedding table untouched (the swap is done on token ids).
    """
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    with adapters_disabled(backbone.text_encoder, backbone.unet):
        hidden = reference_prompt_states(backbone, prompts, learned_tokens, initializer_token)
        return _minus_mean_losses(backbone, images, hidden, draws, device, batch_size)


def calibrated_scores(adapted: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The calibrated score from two :func:`loss_scores`-style scores (minus losses).

    ``adapted - reference`` = reference loss minus adapted loss: positive where the
    adaptation lowered the candidate's loss. Zero everywhere when nothing was released.
    """
    if adapted.shape != reference.shape:
        raise ValueError(f"adapted scores {tuple(adapted.shape)} and reference scores {tuple(reference.shape)} differ")
    return adapted - reference


def binds_anything(backbone: Backbone, learned_tokens: Sequence[str]) -> bool:
    """Whether the backbone differs from its pretrained self: learned tokens or a peft adapter."""
    return bool(learned_tokens) or any(getattr(m, "_hf_peft_config_loaded", False)
                                       for m in (backbone.text_encoder, backbone.unet))


@torch.no_grad()
def reference_prompt_states(backbone: Backbone, prompts: list[str], learned_tokens: Sequence[str],
                            initializer_token: str) -> torch.Tensor:
    """Text-encoder hidden states of ``prompts`` with each learned token's id replaced by the initializer's.

    Replacing ids (not words) keeps the token sequence exactly that of the adapted prompt
    ("<S*>s" and "cats" tokenize differently), so only the learned row differs.
    """
    init_ids = backbone.tokenizer.encode(initializer_token, add_special_tokens=False)
    if len(init_ids) != 1:
        raise ValueError(f"initializer_token {initializer_token!r} must be a single token, it is {len(init_ids)}")
    vocab = backbone.tokenizer.get_vocab()
    missing = [t for t in learned_tokens if t not in vocab]
    if missing:
        # convert_tokens_to_ids would map them to the unknown token (CLIP's is the end token).
        raise ValueError(f"learned tokens {missing} are not in the tokenizer")
    ids = backbone.tokenize(prompts)
    for token in learned_tokens:
        ids[ids == vocab[token]] = init_ids[0]
    encoder_device = next(backbone.text_encoder.parameters()).device
    return backbone.text_encoder(ids.to(encoder_device))[0].to(backbone.unet.dtype)


@contextmanager
def adapters_disabled(*modules: torch.nn.Module) -> Iterator[None]:
    """Within: every peft adapter layer of ``modules`` off (the base weights alone). After: as before.

    peft's ``enable_adapters`` also sets the adapter weights' ``requires_grad``, so both
    the on/off state of each layer and every parameter's flag are restored.
    """
    adapted = [m for m in modules if getattr(m, "_hf_peft_config_loaded", False)]
    layers, flags = [], []
    if adapted:
        from peft.tuners.tuners_utils import BaseTunerLayer  # only a model with an adapter needs peft

        layers = [(layer, layer.disable_adapters) for m in adapted for layer in m.modules()
                  if isinstance(layer, BaseTunerLayer)]
        flags = [(p, p.requires_grad) for m in adapted for p in m.parameters()]
        for layer, _ in layers:
            layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer, was_disabled in layers:
            layer.enable_adapters(not was_disabled)
        for p, flag in flags:
            p.requires_grad_(flag)


def _minus_mean_losses(backbone: Backbone, images: torch.Tensor, hidden: torch.Tensor, draws: LossAttackDraws,
                       device: torch.device, batch_size: int) -> torch.Tensor:
    """Minus the mean loss over the draws of image ``i`` conditioned on ``hidden[i]`` (CPU float64, (N,))."""
    mu, sd = backbone.encode_images(images)
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
