#!/usr/bin/env python
"""Throughput of the suite's sampler loop vs diffusers' StableDiffusionPipeline (benchmark.sampling.throughput).

Prints images/s for each and the ratio.

    python scripts/benchmark_sampler.py [--model builtin:tiny] [--images 64] [--steps 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark.sampling.throughput import sampler_throughput


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:tiny")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    result = sampler_throughput(args.model, args.images, args.batch, args.steps, args.repeats)
    for k, v in result.items():
        print(f"{k:40s} {v:.3f}" if isinstance(v, float) else f"{k:40s} {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
