#!/usr/bin/env python
"""How much does the CLIP score of a memorized prompt measure copying? (benchmark.report.clip_vs_copy)

    python scripts/memorization_clip_vs_copy.py <run dir> [<run dir> ...]

(results/prss_tiny_world.md: the `none`, `prss`, `pe`, `gni` and `rt` runs of its sweeps.)
"""

import sys

from benchmark.report.clip_vs_copy import main

if __name__ == "__main__":
    sys.exit(main())
