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

    return {"model": model, "images": images, "batch": batch, "steps": steps,
            **_race("suite", ours, "diffusers", theirs, images, repeats)}


def stage_throughput(model: str, images: int, batch: int, steps: int, repeats: int,
                     prompt: str = "a red circle on a white background") -> dict:
    """Images per second of the sampling stage (``strategy=cpu``) and of the bare sampler loop, and their ratio."""
    bb = load_backbone(default_config(ModelConfig, name="bench", pretrained=model))
    cfg = default_config(SamplerConfig, num_inference_steps=steps, guidance_scale=4.0, batch_size=batch)
    plan = items_for_texts([prompt] * images, list(range(images)))
    with tempfile.TemporaryDirectory(prefix="stage-throughput-") as out:
        make_trainer = make_trainer_factory(default_config(StrategyConfig, "strategy=cpu"), None, Path(out))

        def stage():
            generate(bb, Guidance(), plan, cfg, make_trainer, Path(out), grid_images=16)

        def loop():
            for start in range(0, images, batch):
                generate_images(bb, plan[start:start + batch], cfg)

        race = _race("stage", stage, "loop", loop, images, repeats)
    return {"model": model, "images": images, "batch": batch, "steps": steps, **race}


def _race(a: str, run_a, b: str, run_b, images: int, repeats: int) -> dict:
    """Both runs warmed up once, then timed interleaved (best of ``repeats``): images/s and the a/b ratio."""
    run_a(), run_b()
    best = best_interleaved({a: run_a, b: run_b}, repeats)
    return {f"{a}_images_per_s": images / best[a], f"{b}_images_per_s": images / best[b],
            f"throughput_ratio_{a}_over_{b}": best[b] / best[a], "torch_threads": torch.get_num_threads()}
