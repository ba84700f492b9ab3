"""The suite's sampler loop: latent diffusion with pluggable guidance.

It does what ``StableDiffusionPipeline.__call__`` does for text-to-image, minus what the
benchmark does not need, and exposes the per-step noise prediction as a
:class:`Guidance` object so that memorization-mitigation methods (PRSS and its
baselines) change only that step. Each image's initial noise comes from its own seed, so
an image does not depend on the batch it was drawn in or on the device that drew it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
)

from benchmark.config import SamplerConfig
from benchmark.sampling.plan import SampleItem

SCHEDULERS = {
    "ddim": DDIMScheduler,
    "ddpm": DDPMScheduler,
    "dpm": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "pndm": PNDMScheduler,
}


def make_scheduler(base_scheduler, kind: str):
    """A fresh scheduler of ``kind`` built from the backbone's scheduler config."""
    if kind not in SCHEDULERS:
        raise ValueError(f"eval.sampler.scheduler={kind!r}; choose one of {sorted(SCHEDULERS)}")
    return SCHEDULERS[kind].from_config(base_scheduler.config)


@dataclass
class GuidanceInputs:
    """What a guidance rule sees at one denoising step."""

    latents: torch.Tensor  # (B, C, h, w), already scaled by the scheduler
    timestep: torch.Tensor
    step_index: int
    cond: torch.Tensor  # (B, L, D) prompt embeddings
    uncond: torch.Tensor  # (B, L, D) embeddings of the sampler's negative prompt ("" by default)
    guidance_scale: float
    num_steps: int = 0  # steps of this pass (step_index == num_steps - 1 is the final one); 0: not given


def noise_magnitude(eps_cond: torch.Tensor, eps_uncond: torch.Tensor) -> torch.Tensor:
    """Wen et al.'s detection signal ``||eps(x_t, c) - eps(x_t, ∅)||_2`` per sample, over the whole latent."""
    dtype = torch.promote_types(eps_cond.dtype, torch.float32)  # half precision: norm in float32
    return (eps_cond.to(dtype) - eps_uncond.to(dtype)).flatten(1).norm(dim=1)


def global_magnitude(eps_cond: torch.Tensor, eps_uncond: torch.Tensor,
                     rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`noise_magnitude` as a rule's magnitude function ``(eps_c, eps_u, rows)``; ``rows``
    (which image each prediction belongs to) matters only to masked magnitudes."""
    return noise_magnitude(eps_cond, eps_uncond)


def batched_predictions(unet, timestep: torch.Tensor,
                        groups: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """UNet noise predictions of several (latents, embeddings) groups in ONE call, split back per group.

    Every guidance evaluates its predictions of a step through this call, so that the
    plain-CFG rows of any guidance are computed exactly as ``guidance=none`` computes them.
    """
    latents = torch.cat([lat for lat, _ in groups])
    embeds = torch.cat([emb for _, emb in groups])
    out = unet(latents, timestep, encoder_hidden_states=embeds).sample
    return list(out.split([len(lat) for lat, _ in groups]))


def cfg_predictions(unet, latents: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor,
                    uncond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eps(x, uncond), eps(x, cond))`` from one batched call (unconditional rows first, as diffusers)."""
    eps_u, eps_c = batched_predictions(unet, timestep, [(latents, uncond), (latents, cond)])
    return eps_u, eps_c


def combine(eps_u: torch.Tensor, eps_c: torch.Tensor, guidance_scale) -> torch.Tensor:
    """Classifier-free guidance ``eps_u + s (eps_c - eps_u)`` (``s`` a number or a broadcastable tensor)."""
    return eps_u + guidance_scale * (eps_c - eps_u)


class Guidance:
    """The per-step guidance rule; the base is classifier-free guidance ``eps(∅) + s (eps(c) - eps(∅))``.

    A rule is built once per run (``GuidanceMethod.guidance``) and used for every batch:
    :meth:`start` receives the batch's :class:`SampleItem` s and resets any per-batch
    state, so a batch's images never depend on an earlier batch. Every rule reports
    per-image statistics of its last batch through :meth:`batch_stats` (1-D tensors, one
    entry per image in batch order); plain CFG reports the first-step magnitude ``m_T``,
    which costs nothing and feeds detection.
    """

    name = "none"

    def start(self, items: Sequence[SampleItem]) -> None:
        """Called once per batch before the first step."""
        self.stats = {}

    def batch_stats(self) -> dict[str, torch.Tensor]:
        return dict(getattr(self, "stats", {}))

    def rows_to_resample(self) -> Sequence[int]:
        """Called once after the batch's full pass: rows to sample again from their own initial
        noise, the rule already set up for that second pass (Bright Ending's mitigation pass).
        The sampler asks once, so a batch costs at most two passes; the base asks for none."""
        return ()

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        eps_u, eps_c = cfg_predictions(unet, x.latents, x.timestep, x.cond, x.uncond)
        if x.step_index == 0:
            self.stats = {"first_step_magnitude": noise_magnitude(eps_c, eps_u).cpu()}
        return combine(eps_u, eps_c, x.guidance_scale)


def initial_noise(seeds: list[int], shape: tuple[int, ...], device, dtype) -> torch.Tensor:
    """Per-image Gaussian noise from per-image seeds (CPU generator: same on every device)."""
    return torch.stack([
        torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds
    ]).to(device=device, dtype=dtype)


@torch.no_grad()
def sample_latents(
    unet,
    base_scheduler,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    seeds: list[int],
    cfg: SamplerConfig,
    latent_shape: tuple[int, int, int],
    guidance: Optional[Guidance] = None,
    items: Sequence[SampleItem] = (),
) -> torch.Tensor:
    """Run the denoising loop for one batch of prompt embeddings; return final latents.

    After the pass, rows the rule asks for (:meth:`Guidance.rows_to_resample`) are sampled
    once more from the same initial noise and replace their first-pass latents.
    """
    guidance = guidance or Guidance()
    noise = initial_noise(seeds, latent_shape, cond.device, cond.dtype)
    guidance.start(list(items))
    latents = _denoise(unet, base_scheduler, noise, cond, uncond, cfg, guidance)
    rows = list(guidance.rows_to_resample())
    if rows:  # the second pass: only the rows asked for, each from its own x_T again
        idx = torch.tensor(rows, dtype=torch.long, device=latents.device)
        latents[idx] = _denoise(unet, base_scheduler, noise[idx], cond[idx], uncond[idx], cfg, guidance)
    return latents


def _denoise(unet, base_scheduler, noise: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
             cfg: SamplerConfig, guidance: Guidance) -> torch.Tensor:
    """One pass of the denoising loop from ``noise`` (a fresh scheduler: multistep ones keep state)."""
    scheduler = make_scheduler(base_scheduler, cfg.scheduler)
    scheduler.set_timesteps(cfg.num_inference_steps, device=cond.device)
    latents = noise * scheduler.init_noise_sigma
    step_kwargs = {"eta": cfg.eta} if isinstance(scheduler, DDIMScheduler) else {}
    steps = len(scheduler.timesteps)
    for i, t in enumerate(scheduler.timesteps):
        scaled = scheduler.scale_model_input(latents, t)
        eps = guidance.noise_prediction(unet, GuidanceInputs(scaled, t, i, cond, uncond, cfg.guidance_scale, steps))
        latents = scheduler.step(eps, t, latents, **step_kwargs).prev_sample
    return latents


def generate_images(backbone, items: Sequence[SampleItem], cfg: SamplerConfig,
                    guidance: Optional[Guidance] = None) -> torch.Tensor:
    """One batch of items -> uint8 NCHW images, through the backbone.

    The unconditional branch is the sampler's ``negative_prompt`` (``""``: classifier-free
    guidance as in the papers).
    """
    items = list(items)
    cond = backbone.encode_prompts([it.text for it in items])
    uncond = backbone.encode_prompts([cfg.negative_prompt] * len(items))
    latents = sample_latents(backbone.unet, backbone.scheduler, cond, uncond, [it.seed for it in items], cfg,
                             backbone.latent_shape, guidance, items)
    return backbone.decode_latents(latents)
