#!/usr/bin/env python
"""Sampling time of ``prss`` relative to ``none`` on memorized and on non-memorized prompts.

Same backbone, prompts, seeds and sampler for both; timed interleaved in one process,
best of several repeats. Targets (issue 5): <= 1.05x where PRSS does not trigger,
<= 2x where it does. Thresholds are PRSS's defaults for the model ("auto": quantiles
calibrated on the dataset's non-memorized prompts for the offline world).

    python scripts/benchmark_prss.py [--model builtin:tiny] [--batch 16] [--steps 25] [--json results/prss_timing.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.config import DatasetConfig, ModelConfig, SamplerConfig, WorldSourceConfig  # noqa: E402
from benchmark.data.datasets import load_dataset  # noqa: E402
from benchmark.adapt.base import RunContext  # noqa: E402
from benchmark.guidance.prss import PRSS  # noqa: E402
from benchmark.models.backbone import load_backbone  # noqa: E402
from benchmark.sampling.sampler import Guidance, generate_images  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="builtin:tiny")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.manual_seed(0)
    bb = load_backbone(ModelConfig(name="bench", pretrained=args.model))
    data = load_dataset(DatasetConfig(name="tiny_memorized", source="world",
                                      world=WorldSourceConfig(population="memorized", num_adapt=48, num_heldout=0)),
                        32)
    sampler = SamplerConfig(num_inference_steps=args.steps, guidance_scale=4.0, batch_size=args.batch)
    method = PRSS()
    method.check_sampler(sampler)
    method.adapt(bb, data, RunContext(Path("."), 0, None, None, None))
    prss = method.guidance()
    controls = [p for p in data.prompts if not p.memorized]
    # The controls PRSS leaves alone (first-step magnitude at or below lambda_ss at seed i).
    probe = Guidance()
    generate_images(bb, [p.text() for p in controls], list(range(len(controls))),
                    SamplerConfig(num_inference_steps=1, batch_size=len(controls)), probe)
    quiet = [p for p, m in zip(controls, probe.batch_stats()["first_step_magnitude"].tolist())
             if m <= method.thresholds["lambda_ss"]]
    groups = {"memorized": [p for p in data.prompts if p.memorized],
              "non_memorized_untriggered": quiet, "non_memorized_first16": controls}
    out = {"model": args.model, "batch": args.batch, "steps": args.steps, "thresholds": method.thresholds}
    for name, prompts in groups.items():
        prompts = prompts[:args.batch]
        batch = {"prompt": [p.text() for p in prompts], "paraphrases": [p.paraphrases for p in prompts]}
        seeds = list(range(len(prompts))) if name != "non_memorized_untriggered" else \
            [i for i, p in enumerate(controls) if p in quiet][:len(prompts)]
        times = {"none": [], "prss": []}
        for _ in range(args.repeats):
            for label, guidance in (("none", Guidance()), ("prss", prss)):
                start = time.perf_counter()
                generate_images(bb, batch["prompt"], seeds, sampler, guidance, batch)
                times[label].append(time.perf_counter() - start)
        trig = float(prss.batch_stats()["triggered"].float().mean())
        best = {k: min(v) for k, v in times.items()}
        out[name] = {"images": len(prompts), "none_s": round(best["none"], 4), "prss_s": round(best["prss"], 4),
                     "ratio": round(best["prss"] / best["none"], 3), "trigger_fraction": trig}
        print(f"{name:26s} {len(prompts)} images: none {best['none']:.3f}s  prss {best['prss']:.3f}s  "
              f"ratio {best['prss'] / best['none']:.3f}x  (PRSS triggered on {trig:.0%})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
