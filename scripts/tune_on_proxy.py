#!/usr/bin/env python
"""Tune every compared method on the public proxy style and write the chosen settings.

    python scripts/tune_on_proxy.py                       # full grid, epsilon 1, 4, 8, inf
    python scripts/tune_on_proxy.py --grid quick --epsilons 1,inf --methods dpagg_ti,dpsgd_ti

Runs one ``experiment=tune_on_proxy`` multirun per method (``python -m benchmark``, so
every trial is an ordinary, resumable job: a finished trial is skipped on a rerun),
then ``benchmark.report.tuning`` picks, per method and epsilon, the trial with the
highest ``eval/proxy_style_rate`` and writes ``<out>/tuning.{md,json}``. Only public
data is read (``dataset=tiny_proxy_style``); the tuner refuses private data.

DPAgg-TI's clipping radius R is tuned in units of the vocabulary's mean row norm (the
METHODS.md default, ``null``), measured on the model's text encoder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from benchmark.adapt.dpagg_ti import vocabulary_mean_norm
from benchmark.config import ModelConfig, default_config
from benchmark.models.backbone import load_backbone
from benchmark.report.tuning import write_tuning

# Per method, each knob and its values. "quick" fits the four methods in about an hour on
# two cores: DPAgg-TI's whole grid (its per-image embeddings are trained once per learning
# rate and length, then reused for every R and epsilon) and DP-SGD without the clipping norm,
# the knob Adam is least sensitive to (when every per-example gradient is clipped, scaling C
# scales the update's signal and noise alike, and Adam's update is invariant to that scale).
DPAGG_GRID = {"method.learning_rate": [0.005, 0.02], "method.max_steps": [200, 800],
              "method.clip_radius": ["vocab", "2vocab"]}
GRIDS = {
    "full": {
        "ti": {"method.learning_rate": [0.005, 0.02], "method.max_steps": [400, 800]},
        "dpagg_ti": DPAGG_GRID,
        "dpsgd_ti": {"method.learning_rate": [0.02, 0.05], "method.epochs": [50, 100],
                     "method.batch_size": [8, 16], "method.max_grad_norm": [0.1, 1.0]},
        "dpsgd_lora": {"method.learning_rate": [0.001, 0.003], "method.epochs": [25, 50],
                       "method.batch_size": [8, 16], "method.max_grad_norm": [0.1, 1.0]},
    },
    "quick": {
        "ti": {"method.learning_rate": [0.005, 0.02]},
        "dpagg_ti": DPAGG_GRID,
        "dpsgd_ti": {"method.learning_rate": [0.02, 0.05], "method.epochs": [50, 100], "method.batch_size": [8, 16]},
        "dpsgd_lora": {"method.learning_rate": [0.001, 0.003], "method.epochs": [25, 50], "method.batch_size": [8, 16]},
    },
}


def overrides(grid: dict, vocab_norm: float) -> list[str]:
    def value(v):
        if isinstance(v, str) and v.endswith("vocab"):
            return f"{float(v.removesuffix('vocab') or 1) * vocab_norm:.4g}"
        return str(v)

    return [f"{key}={','.join(value(v) for v in values)}" for key, values in grid.items()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", choices=sorted(GRIDS), default="full")
    p.add_argument("--methods", default="ti,dpagg_ti,dpsgd_ti,dpsgd_lora")
    p.add_argument("--epsilons", default="1,4,8,inf")
    p.add_argument("--model", default="tiny")
    p.add_argument("--sweep-dir", type=Path, default=Path("outputs/sweeps/tune_on_proxy"))
    p.add_argument("--out", type=Path, default=Path("results/tune_on_proxy"))
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = p.parse_args()
    vocab_norm = vocabulary_mean_norm(load_backbone(default_config(ModelConfig, f"model={args.model}")))
    print(f"vocabulary mean row norm: {vocab_norm:.4f}")
    for method in args.methods.split(","):
        if method not in GRIDS[args.grid]:
            p.error(f"--methods: no grid for {method!r}; known: {sorted(GRIDS[args.grid])}")
        epsilons = "inf" if method == "ti" else args.epsilons  # non-private: only epsilon = inf
        cmd = [sys.executable, "-m", "benchmark", "experiment=tune_on_proxy", f"model={args.model}",
               f"method={method}", f"privacy.epsilon={epsilons}",
               f"hydra.sweep.dir={args.sweep_dir / method}", *overrides(GRIDS[args.grid][method], vocab_norm)]
        print(" ".join(cmd[1:]), flush=True)
        if not args.dry_run:
            subprocess.run(cmd, check=True)
    if args.dry_run:
        return 0
    for key, entry in write_tuning(args.sweep_dir, args.out).items():
        print(f"{key}: {entry['knobs']} -> proxy style rate {entry['eval/proxy_style_rate']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
