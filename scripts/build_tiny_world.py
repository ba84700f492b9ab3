#!/usr/bin/env python
"""Build the offline world's models (the recipe behind the weights shipped in the package).

    python scripts/build_tiny_world.py                      # full build into benchmark/assets/tiny_world
    python scripts/build_tiny_world.py --scale micro --out /tmp/micro
    python scripts/build_tiny_world.py --out /tmp/w --compare benchmark/assets/tiny_world

The full build takes about an hour on two CPU cores (stages resume if interrupted).
``--compare`` rebuilds and reports, file by file, whether the weights equal the shipped
ones (bit-identical on the same torch build and machine type; float results may differ
across CPUs and versions).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmark.models.backbone import PACKAGED_WORLD
from benchmark.world.build import build_world


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=["full", "micro"], default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=PACKAGED_WORLD)
    parser.add_argument("--force", action="store_true", help="retrain stages that already exist")
    parser.add_argument("--compare", type=Path, help="a built world to compare checksums with")
    args = parser.parse_args()
    start = time.time()
    out = build_world(args.out, args.scale, args.seed, progress=True, force=args.force)
    print(f"built {args.scale} world in {time.time() - start:.0f} s -> {out}")
    if args.compare:
        mine = json.loads((out / "world.json").read_text())["checksums"]
        theirs = json.loads((args.compare / "world.json").read_text())["checksums"]
        same = sorted(k for k in mine if theirs.get(k) == mine[k])
        differ = sorted(k for k in mine if theirs.get(k) != mine[k])
        print(f"identical files: {len(same)}; different: {len(differ)}")
        for k in differ:
            print(f"  differs: {k}")
        return 0 if not differ else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
