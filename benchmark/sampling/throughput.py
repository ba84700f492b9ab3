"""Throughput of the suite's sampler loop vs diffusers' ``StableDiffusionPipeline``
(``scripts/benchmark_sampler.py``): same model, prompts, seeds, scheduler, steps and
guidance; both timed in one process, interleaved, best of several repeats."""

from __future__ import annotations

import torch

from benchmark.config import ModelConfig, SamplerConfig, default_config
from benchmark.models.backbone import load_backbone, resolve_pretrained
from benchmark.sampling.plan import items_for_texts
from benchmark.sampling.sampler import generate_images, initial_noise
from benchmark.utils.timing import best_interleaved


def sampler_throughput(model: str, images: int, batch: int, steps: int, repeats: int,
                       prompt: str = "a red circle on a white background") -> dict:
    """Images per second of the suite's sampler and of diffusers' pipeline, and their ratio."""
    from diffusers import StableDiffusionPipeline

    bb = load_backbone(default_config(ModelConfig, name="bench", pretrained=model))
    pipe = StableDiffusionPipeline.from_pretrained(resolve_pretrained(model), safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    shape = bb.latent_shape
    res = shape[-1] * (2 ** (len(bb.vae.config.block_out_channels) - 1))
    cfg = default_config(SamplerConfig, num_inference_steps=steps, guidance_scale=4.0, batch_size=batch)
    prompts = [prompt] * batch

    def ours():
        for start in range(0, images, batch):
            generate_images(bb, items_for_texts(prompts, list(range(start, start + batch))), cfg)

    def theirs():
        for start in range(0, images, batch):
            seeds = list(range(start, start + batch))
            pipe(prompts, height=res, width=res, num_inference_steps=steps, guidance_scale=4.0,
                 latents=initial_noise(seeds, shape, "cpu", torch.float32), output_type="pt")

    ours(), theirs()  # warm-up
    best = best_interleaved({"suite": ours, "diffusers": theirs}, repeats)
    return {"model": model, "images": images, "batch": batch, "steps": steps,
            "suite_images_per_s": images / best["suite"], "diffusers_images_per_s": images / best["diffusers"],
            "throughput_ratio_suite_over_diffusers": best["diffusers"] / best["suite"],
            "torch_threads": torch.get_num_threads()}
