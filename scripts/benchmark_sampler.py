#!/usr/bin/env python
"""Sampling throughput (benchmark.sampling.throughput): the suite's sampler loop vs diffusers'
StableDiffusionPipeline, or (--stage) the whole sampling stage vs the bare sampler loop.

Prints images/s for each and the ratio.

    python scripts/benchmark_sampler.py [--model builtin:tiny] [--images 64] [--steps 25] [--json out.json]
    python -m benchmark.models.sd_shaped /tmp/sd15r --reduced
    python scripts/benchmark_sampler.py --stage --model /tmp/sd15r --images 16 --batch 4 --steps 10
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from benchmark.lightning.console import quiet_console
from benchmark.sampling.throughput import sampler_throughput, stage_throughput


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:tiny")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stage", action="store_true", help="the sampling stage vs the bare sampler loop")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_console()
    logging.getLogger("lightning").setLevel(logging.WARNING)  # the trainer's device banner, per repeat
    measure = stage_throughput if args.stage else sampler_throughput
    result = measure(args.model, args.images, args.batch, args.steps, args.repeats)
    for k, v in result.items():
        print(f"{k:40s} {v:.3f}" if isinstance(v, float) else f"{k:40s} {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
