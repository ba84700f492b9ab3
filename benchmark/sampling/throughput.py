"""Sampling throughput, timed in one process, interleaved, best of several repeats
(``scripts/benchmark_sampler.py``):

* :func:`sampler_throughput`: the suite's sampler loop vs diffusers'
  ``StableDiffusionPipeline`` (same model, prompts, seeds, scheduler, steps, guidance);
* :func:`stage_throughput`: the whole sampling stage (:func:`benchmark.sampling.generate.generate`:
  Lightning ``predict``, gathering, PNGs, index and grid) vs the bare sampler loop on the
  same model, i.e. what the stage's machinery costs on top of the denoising itself.
"""

from __future__ import annotations

import torch

import tempfile
from pathlib import Path

from benchmark.config import ModelConfig, SamplerConfig, StrategyConfig, default_config
from benchmark.lightning.factories import make_trainer_factory
from benchmark.models.backbone import load_backbone, resolve_pretrained
from benchmark.sampling.generate import generate
from benchmark.sampling.plan import items_for_texts
from benchmark.sampling.sampler import Guidance, generate_images, initial_noise
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


def stage_throughput(model: str, images: int, batch: int, steps: int, repeats: int,
                     prompt: str = "a red circle on a white background") -> dict:
    """Images per second of the sampling stage (``strategy=cpu``) and of the bare sampler loop, and their ratio."""
    bb = load_backbone(default_config(ModelConfig, name="bench", pretrained=model))
    cfg = default_config(SamplerConfig, num_inference_steps=steps, guidance_scale=4.0, batch_size=batch)
    plan = items_for_texts([prompt] * images, list(range(images)))
    out = Path(tempfile.mkdtemp(prefix="stage-throughput-"))
    make_trainer = make_trainer_factory(default_config(StrategyConfig, "strategy=cpu"), None, out)

    def stage():
        generate(bb, Guidance(), plan, cfg, make_trainer, out, grid_images=16)

    def loop():
        for start in range(0, images, batch):
            generate_images(bb, plan[start:start + batch], cfg)

    stage(), loop()  # warm-up
    best = best_interleaved({"stage": stage, "loop": loop}, repeats)
    return {"model": model, "images": images, "batch": batch, "steps": steps,
            "stage_images_per_s": images / best["stage"], "loop_images_per_s": images / best["loop"],
            "throughput_ratio_stage_over_loop": best["loop"] / best["stage"],
            "torch_threads": torch.get_num_threads()}
