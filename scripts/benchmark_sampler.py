#!/usr/bin/env python
"""Throughput of the suite's sampler loop vs diffusers' StableDiffusionPipeline.

Same model, prompts, seeds, scheduler, steps and guidance; both timed in one process,
interleaved, best of several repeats. Prints images/s for each and the ratio.

    python scripts/benchmark_sampler.py [--model builtin:tiny] [--images 64] [--steps 25]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.config import ModelConfig, SamplerConfig  # noqa: E402
from benchmark.models.backbone import load_backbone, resolve_pretrained  # noqa: E402
from benchmark.sampling.sampler import generate_images, initial_noise  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="builtin:tiny")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    from diffusers import StableDiffusionPipeline

    bb = load_backbone(ModelConfig(name="bench", pretrained=args.model))
    pipe = StableDiffusionPipeline.from_pretrained(resolve_pretrained(args.model), safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    shape = bb.latent_shape
    res = shape[-1] * (2 ** (len(bb.vae.config.block_out_channels) - 1))
    cfg = SamplerConfig(num_inference_steps=args.steps, guidance_scale=4.0, batch_size=args.batch)
    prompts = ["a red circle on a white background"] * args.batch

    def ours():
        for start in range(0, args.images, args.batch):
            generate_images(bb, prompts, list(range(start, start + args.batch)), cfg)

    def theirs():
        for start in range(0, args.images, args.batch):
            seeds = list(range(start, start + args.batch))
            pipe(prompts, height=res, width=res, num_inference_steps=args.steps, guidance_scale=4.0,
                 latents=initial_noise(seeds, shape, "cpu", torch.float32), output_type="pt")

    times = {"suite": [], "diffusers": []}
    ours(), theirs()  # warm-up
    for _ in range(args.repeats):
        for name, fn in (("suite", ours), ("diffusers", theirs)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in times.items()}
    result = {
        "model": args.model, "images": args.images, "batch": args.batch, "steps": args.steps,
        "suite_images_per_s": args.images / best["suite"],
        "diffusers_images_per_s": args.images / best["diffusers"],
        "throughput_ratio_suite_over_diffusers": best["diffusers"] / best["suite"],
        "torch_threads": torch.get_num_threads(),
    }
    for k, v in result.items():
        print(f"{k:40s} {v:.3f}" if isinstance(v, float) else f"{k:40s} {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
