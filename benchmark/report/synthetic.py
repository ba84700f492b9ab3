"""Synthetic sweep directories (the layout and keys a real sweep writes), for tests and timing."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Optional, Sequence

from benchmark.utils.io import atomic_write_json


def synthetic_metrics(method: str, epsilon: float, seed: int, knobs: Optional[dict] = None,
                      memorization: bool = False, rng: Optional[random.Random] = None) -> dict:
    """A flat ``metrics.json`` payload like run.py's: metrics, provenance and ``config/...``."""
    rng = rng or random.Random(hash((method, epsilon, seed, tuple(sorted((knobs or {}).items())))))
    budget = 1.0 if math.isinf(epsilon) else epsilon / (1.0 + epsilon)
    metrics = {
        "method": method, "dataset": "tiny_style", "model": "tiny", "seed": seed,
        "privacy/epsilon": epsilon, "privacy/target_epsilon": epsilon, "privacy/delta": 1e-5,
        "privacy/noise_multiplier": 0.0 if math.isinf(epsilon) else 3.0 / epsilon,
        "eval/fid": 60 - 30 * budget + rng.gauss(0, 2), "eval/kid": 0.05 + rng.random() * 0.01,
        "eval/clip_score": 20 + 5 * budget + rng.gauss(0, 0.5),
        "eval/private_style_rate": min(1.0, max(0.0, 0.8 * budget + rng.gauss(0, 0.05))),
        "eval/accuracy_shape": 0.9 + rng.random() * 0.05, "eval/num_images": 64,
        "time/total_s": 10 + rng.random(), "adapt/cache_hit": 0,
        "config_hash": f"{rng.getrandbits(64):016x}", "git_commit": "synthetic", "version/torch": "2.x",
        "config/seed": seed, "config/method/name": method, "config/privacy/epsilon": epsilon,
        "config/eval/num_images": 64, "config/dataset/name": "tiny_style",
    }
    for key, value in (knobs or {}).items():
        metrics[f"config/{key.replace('.', '/')}"] = value
    if memorization:
        strength = float(next(iter((knobs or {}).values()), 0.0))
        metrics["eval/memorized_fraction_copied"] = max(0.0, 0.6 - strength + rng.gauss(0, 0.02))
        metrics["eval/memorized_similarity_mean"] = 0.9 - strength / 2
        metrics["eval/clip_score"] -= 4 * strength
    return metrics


def write_job(sweep_dir: Path, num: int, metrics: dict) -> Path:
    eps = metrics["privacy/target_epsilon"]
    eps_text = "inf" if math.isinf(eps) else f"{eps:g}"
    run_dir = Path(sweep_dir) / f"{num}_{metrics['method']}_eps{eps_text}_s{metrics['seed']}"
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "metrics.json", metrics)
    return run_dir


def make_synthetic_sweep(sweep_dir: Path, methods: Sequence[str] = ("dpagg_ti", "dpsgd_ti"),
                         epsilons: Sequence[float] = (1.0, 4.0, math.inf), seeds: Sequence[int] = (0, 1, 2),
                         mitigation: Optional[dict[str, Sequence[float]]] = None) -> list[dict]:
    """Write one run directory per job; returns the jobs' metrics in job order.

    ``mitigation``: method -> strength values; those jobs run at epsilon inf with knob
    ``method.strength`` and report memorization metrics.
    """
    jobs = []
    for method in methods:
        for eps in epsilons:
            for seed in seeds:
                jobs.append(synthetic_metrics(method, eps, seed))
    for method, strengths in (mitigation or {}).items():
        for strength in strengths:
            for seed in seeds:
                jobs.append(synthetic_metrics(method, math.inf, seed, {"method.strength": strength}, memorization=True))
    for num, metrics in enumerate(jobs):
        write_job(sweep_dir, num, metrics)
    return jobs
