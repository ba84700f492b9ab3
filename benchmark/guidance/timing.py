"""Sampling time of PRSS relative to plain CFG (``scripts/benchmark_prss.py``).

Same backbone, prompts, seeds and sampler for both; timed interleaved in one process,
best of several repeats, on three groups: memorized prompts, non-memorized prompts PRSS
leaves alone (its own rule decides: untriggered at their seed), and the first
non-memorized prompts. Targets (issue 5): <= 1.05x where PRSS does not trigger, <= 2x
where it does.
"""

from __future__ import annotations

from functools import partial

from benchmark.config import SamplerConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.guidance.base import SamplingContext
from benchmark.guidance.prss import PRSS
from benchmark.models.backbone import Backbone
from benchmark.sampling.plan import items_for_texts
from benchmark.sampling.sampler import Guidance, generate_images
from benchmark.utils.timing import best_interleaved


def _items(prompts, seeds):
    return items_for_texts([p.text() for p in prompts], seeds, [p.paraphrases for p in prompts])


def prss_overhead(backbone: Backbone, data: BenchmarkDataset, method: PRSS, sampler: SamplerConfig,
                  repeats: int) -> dict:
    """``{"thresholds": ..., <group>: {"images", "none_s", "prss_s", "ratio", "trigger_fraction"}}``."""
    method.check(sampler)
    ctx = SamplingContext(backbone, data, sampler, seed=0, device="cpu")
    calibration = method.calibrate(ctx)
    prss = method.guidance(ctx, calibration)
    controls = [p for p in data.prompts if not p.memorized]
    quiet = []  # (prompt, seed) of the controls PRSS does not trigger on
    for start in range(0, len(controls), sampler.batch_size):
        chunk = controls[start:start + sampler.batch_size]
        seeds = list(range(start, start + len(chunk)))
        generate_images(backbone, _items(chunk, seeds), sampler, prss)
        quiet += [(p, s) for p, s, t in zip(chunk, seeds, prss.batch_stats()["triggered"].tolist()) if not t]
    memorized = [p for p in data.prompts if p.memorized]
    groups = {"memorized": (memorized, list(range(len(memorized)))),
              "non_memorized_untriggered": ([p for p, _ in quiet], [s for _, s in quiet]),
              "non_memorized_first16": (controls, list(range(len(controls))))}
    out = {"thresholds": calibration.thresholds}
    for name, (prompts, seeds) in groups.items():
        items = _items(prompts[:sampler.batch_size], seeds[:sampler.batch_size])
        best = best_interleaved({label: partial(generate_images, backbone, items, sampler, rule)
                                 for label, rule in (("none", Guidance()), ("prss", prss))}, repeats)
        out[name] = {"images": len(items), "none_s": round(best["none"], 4), "prss_s": round(best["prss"], 4),
                     "ratio": round(best["prss"] / best["none"], 3),
                     "trigger_fraction": float(prss.batch_stats()["triggered"].float().mean())}
    return out


def bright_ending_overhead(backbone: Backbone, data: BenchmarkDataset, prss: PRSS, prss_be: PRSS,
                           sampler: SamplerConfig, repeats: int) -> dict:
    """Sampling time of ``prss_be`` against ``prss`` (and ``none``), interleaved, best of ``repeats``.

    Groups: the first batch of memorized prompts and the first batch of non-memorized ones,
    at seeds 0.. (the run's own calibration of each method first, untimed). Returns
    ``{"thresholds": {...}, <group>: {"images", "none_s", "prss_s", "prss_be_s", "ratio_be_to_prss",
    "ratio_be_to_none", "prss_trigger_fraction", "prss_be_trigger_fraction"}}``.
    """
    ctx = SamplingContext(backbone, data, sampler, seed=0, device="cpu")
    rules, out = {"none": Guidance()}, {"thresholds": {}}
    for label, method in (("prss", prss), ("prss_be", prss_be)):
        method.check(sampler)
        method.check_backbone(backbone)
        calibration = method.calibrate(ctx)
        rules[label] = method.guidance(ctx, calibration)
        out["thresholds"][label] = calibration.thresholds
    groups = {"memorized": [p for p in data.prompts if p.memorized],
              "non_memorized": [p for p in data.prompts if p.memorized is False]}
    for name, prompts in groups.items():
        items = _items(prompts[:sampler.batch_size], list(range(min(len(prompts), sampler.batch_size))))
        best = best_interleaved({label: partial(generate_images, backbone, items, sampler, rule)
                                 for label, rule in rules.items()}, repeats)
        out[name] = {"images": len(items), **{f"{k}_s": round(v, 4) for k, v in best.items()},
                     "ratio_be_to_prss": round(best["prss_be"] / best["prss"], 3),
                     "ratio_be_to_none": round(best["prss_be"] / best["none"], 3),
                     **{f"{k}_trigger_fraction": float(rules[k].batch_stats()["triggered"].float().mean())
                        for k in ("prss", "prss_be")}}
    return out
