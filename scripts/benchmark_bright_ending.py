#!/usr/bin/env python
"""Sampling time of ``guidance=prss_be`` relative to ``guidance=prss`` (benchmark.guidance.timing).

Both with their YAML defaults ("auto" thresholds: quantiles calibrated on the dataset's
non-memorized prompts on the offline world; prss_be's lambda_ss on masked magnitudes).

    python scripts/benchmark_bright_ending.py [--model builtin:tiny] [--batch 16] [--steps 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from hydra.utils import instantiate

from benchmark.config import DatasetConfig, ModelConfig, SamplerConfig, compose_config, default_config
from benchmark.datasets import load_dataset
from benchmark.guidance.timing import bright_ending_overhead
from benchmark.models.backbone import load_backbone


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:tiny")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.manual_seed(0)
    backbone = load_backbone(default_config(ModelConfig, name="bench", pretrained=args.model))
    data = load_dataset(default_config(DatasetConfig, "dataset=tiny_memorized"), 32)  # 16 memorized + 48 controls
    prss, prss_be = (instantiate(compose_config([f"guidance={g}"]).guidance, _convert_="all") for g in ("prss", "prss_be"))
    sampler = default_config(SamplerConfig, num_inference_steps=args.steps, guidance_scale=4.0, batch_size=args.batch)
    out = {"model": args.model, "batch": args.batch, "steps": args.steps,
           **bright_ending_overhead(backbone, data, prss, prss_be, sampler, args.repeats)}
    for name, row in out.items():
        if isinstance(row, dict) and "ratio_be_to_prss" in row:
            print(f"{name:14s} {row['images']} images: none {row['none_s']:.3f}s  prss {row['prss_s']:.3f}s  "
                  f"prss_be {row['prss_be_s']:.3f}s  prss_be/prss {row['ratio_be_to_prss']:.3f}x  "
                  f"(triggered: prss {row['prss_trigger_fraction']:.0%}, prss_be {row['prss_be_trigger_fraction']:.0%})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
