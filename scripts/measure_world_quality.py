#!/usr/bin/env python
"""Measure the offline world against the bars of the foundation issue (benchmark.world.quality).

    python scripts/measure_world_quality.py [--model builtin:tiny] [--out results]
"""

from benchmark.world.quality import main

if __name__ == "__main__":
    main()
