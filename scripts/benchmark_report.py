#!/usr/bin/env python
"""Time ``python -m benchmark.report`` on a synthetic 100-job sweep with 32 images per job (bar: <= 10 s).

The sweep has the layout and keys of a real one (``benchmark.report.synthetic``): 3 DP
methods x 6 epsilons x 5 seeds (90 jobs) plus a mitigation guidance at 2 strengths x 5
seeds (10 jobs, with memorization metrics), so both plots are drawn; every job has
``--images`` PNGs (``--image-size`` px; above 128 px they are thumbnailed) and
``images/index.jsonl``, so report.html's gallery is built in full. The report runs as
the command a user types (a fresh process: imports included), twice: the second render
reuses the thumbnail cache.

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
    parser.add_argument("--images", type=int, default=32, help="images per job")
    parser.add_argument("--image-size", type=int, default=32, help="their side in px (the offline world: 32)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sweep = args.jobs_dir or Path(tmp) / "sweep"
        jobs = make_synthetic_sweep(sweep, methods=("dpagg_ti", "dpsgd_ti", "dpsgd_lora"),
                                    epsilons=(0.5, 1, 2, 4, 8, math.inf), seeds=(0, 1, 2, 3, 4),
                                    mitigation={"gni": (0.1, 0.2)}, images_per_job=args.images,
                                    image_size=args.image_size)
        times = []
        for _ in range(2):  # the first render makes any thumbnails, the second reuses them
            start = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "benchmark.report", str(sweep)], capture_output=True,
                                 text=True, cwd=Path(__file__).resolve().parents[1])
            times.append(time.perf_counter() - start)
            if res.returncode != 0:
                sys.exit(res.stderr)
        outputs = sorted(p.name for p in sweep.iterdir() if p.is_file())
        html_bytes = (sweep / "report.html").stat().st_size
    seconds = times[0]
    result = {"jobs": len(jobs), "images_per_job": args.images, "image_size": args.image_size,
              "seconds": round(seconds, 2), "seconds_second_render": round(times[1], 2), "bar_seconds": 10,
              "report_html_bytes": html_bytes, "outputs": outputs,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
              "command": "python -m benchmark.report <sweep dir>",
              "script": f"python scripts/benchmark_report.py --images {args.images} --image-size {args.image_size}"}
    print(f"report of a {len(jobs)}-job sweep, {args.images} images per job ({args.image_size} px): "
          f"{seconds:.2f} s, again {times[1]:.2f} s (bar: 10 s); wrote {', '.join(outputs)}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
