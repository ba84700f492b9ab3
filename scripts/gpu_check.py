#!/usr/bin/env python
"""The GPU check (benchmark.gpu_check): on one NVIDIA GPU, the full-size SD v1.5-shaped model
through ti, dpagg_ti, dpsgd_ti, dpsgd_lora and prss at 512 px; exits 1 on any device or dtype error.

    python scripts/gpu_check.py                          # on the GPU machine
    python scripts/gpu_check.py --device cpu --reduced   # the same code on a CPU, tiny model, 64 px
"""

import sys

from benchmark.gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
