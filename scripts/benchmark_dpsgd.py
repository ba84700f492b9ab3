#!/usr/bin/env python
"""Cost of a DP-SGD step relative to the same non-private step (see benchmark.adapt.dpsgd.benchmarking).

    python scripts/benchmark_dpsgd.py [--model builtin:tiny] [--batch 8] [--steps 20] [--out results/dpsgd_overhead]
"""

from benchmark.adapt.dpsgd.benchmarking import main

if __name__ == "__main__":
    main(prog="python scripts/benchmark_dpsgd.py")
