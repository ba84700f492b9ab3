#!/usr/bin/env python
"""Sampling time of ``guidance=prss`` relative to ``guidance=none``, or (``--bright-ending``)
of ``guidance=prss_be`` relative to ``prss`` and ``none`` (benchmark.guidance.timing).

Each method with its YAML defaults ("auto" thresholds: quantiles calibrated on the
dataset's non-memorized prompts on the offline world; prss_be's lambda_ss on masked
magnitudes).

    python scripts/benchmark_prss.py [--model builtin:tiny] [--batch 16] [--steps 25] [--json results/prss_timing.json]
    python scripts/benchmark_prss.py --bright-ending --repeats 2 --json results/bright_ending/timing.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from hydra.utils import instantiate

from benchmark.config import DatasetConfig, ModelConfig, SamplerConfig, compose_config, default_config
from benchmark.datasets import load_dataset
from benchmark.guidance.timing import bright_ending_overhead, prss_overhead
from benchmark.models.backbone import load_backbone


def _guidance(name: str):
    return instantiate(compose_config([f"guidance={name}"]).guidance, _convert_="all")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:tiny")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--bright-ending", action="store_true", help="time prss_be against prss and none")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.manual_seed(0)
    backbone = load_backbone(default_config(ModelConfig, name="bench", pretrained=args.model))
    data = load_dataset(default_config(DatasetConfig, "dataset=tiny_memorized"), 32)  # 16 memorized + 48 controls
    sampler = default_config(SamplerConfig, num_inference_steps=args.steps, guidance_scale=4.0, batch_size=args.batch)
    if args.bright_ending:
        timed = bright_ending_overhead(backbone, data, _guidance("prss"), _guidance("prss_be"), sampler, args.repeats)
    else:
        timed = prss_overhead(backbone, data, _guidance("prss"), sampler, args.repeats)
    out = {"model": args.model, "batch": args.batch, "steps": args.steps, **timed}
    for name, row in out.items():
        if isinstance(row, dict) and "ratio_be_to_prss" in row:
            print(f"{name:14s} {row['images']} images: none {row['none_s']:.3f}s  prss {row['prss_s']:.3f}s  "
                  f"prss_be {row['prss_be_s']:.3f}s  prss_be/prss {row['ratio_be_to_prss']:.3f}x  "
                  f"(triggered: prss {row['prss_trigger_fraction']:.0%}, prss_be {row['prss_be_trigger_fraction']:.0%})")
        elif isinstance(row, dict) and "ratio" in row:
            print(f"{name:26s} {row['images']} images: none {row['none_s']:.3f}s  prss {row['prss_s']:.3f}s  "
                  f"ratio {row['ratio']:.3f}x  (PRSS triggered on {row['trigger_fraction']:.0%})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
