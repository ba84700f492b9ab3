#!/usr/bin/env python
"""Cost of DPAgg-TI's per-image TI, batched vs sequential, and of an epsilon sweep
(see benchmark.adapt.per_image_ti_benchmarking).

    python scripts/benchmark_per_image_ti.py [--model builtin:tiny] [--images 32] [--steps 200] [--json out.json]
"""

from benchmark.adapt.per_image_ti_benchmarking import main

if __name__ == "__main__":
    main(prog="python scripts/benchmark_per_image_ti.py")
