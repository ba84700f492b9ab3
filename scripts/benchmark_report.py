#!/usr/bin/env python
"""Time ``python -m benchmark.report`` on a synthetic 100-job sweep (bar: <= 10 s).

The sweep has the layout and keys of a real one (``benchmark.report.synthetic``): 3 DP
methods x 6 epsilons x 5 seeds (90 jobs) plus a mitigation method at 2 strengths x 5
seeds (10 jobs, with memorization metrics), so both plots are drawn. The report runs as
the command a user types (a fresh process: imports included).

    python scripts/benchmark_report.py [--jobs-dir DIR] [--json results/report_timing.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmark.report.synthetic import make_synthetic_sweep


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs-dir", type=Path, default=None, help="keep the synthetic sweep here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sweep = args.jobs_dir or Path(tmp) / "sweep"
        jobs = make_synthetic_sweep(sweep, methods=("dpagg_ti", "dpsgd_ti", "dpsgd_lora"),
                                    epsilons=(0.5, 1, 2, 4, 8, math.inf), seeds=(0, 1, 2, 3, 4),
                                    mitigation={"gni": (0.1, 0.2)})
        start = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "benchmark.report", str(sweep)], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1])
        seconds = time.perf_counter() - start
        if res.returncode != 0:
            sys.exit(res.stderr)
        outputs = sorted(p.name for p in sweep.iterdir() if p.is_file())
    result = {"jobs": len(jobs), "seconds": round(seconds, 2), "bar_seconds": 10, "outputs": outputs,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
              "command": "python -m benchmark.report <sweep dir>"}
    print(f"report of a {len(jobs)}-job sweep: {seconds:.2f} s (bar: 10 s); wrote {', '.join(outputs)}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
