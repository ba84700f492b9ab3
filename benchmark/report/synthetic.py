"""Synthetic sweep directories with the layout of real ones, for the report's tests and timing.

A job directory holds what a finished run writes: ``metrics.json`` (flat, as run.py's),
``resolved_config.json``, ``.hydra/config.yaml`` and, with ``images_per_job``,
``images/00000.png ...`` with ``images/index.jsonl`` (the sampling stage's columns).
Images are small procedural pictures whose colour follows the method and epsilon and
whose pattern follows the prompt and the image's seed, so a gallery shows which images
belong together. No model code is imported.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Optional, Sequence

from benchmark.utils.io import atomic_write_bytes, atomic_write_json

PROMPTS = ("a circle in the style of <S*>", "a square in the style of <S*>", "a triangle in the style of <S*>",
           "a star in the style of <S*>", "a cross in the style of <S*>", "a ring in the style of <S*>",
           "a heart in the style of <S*>", "a moon in the style of <S*>")


def synthetic_metrics(method: str, epsilon: float, seed: int, knobs: Optional[dict] = None,
                      memorization: bool = False, rng: Optional[random.Random] = None,
                      guidance: str = "none") -> dict:
    """A flat ``metrics.json`` payload like run.py's: metrics, provenance and ``config/...``."""
    # A string seed: reproducible across processes (hash() of a str is salted per process).
    rng = rng or random.Random(f"{method}|{guidance}|{epsilon}|{seed}|{sorted((knobs or {}).items())}")
    budget = 1.0 if math.isinf(epsilon) else epsilon / (1.0 + epsilon)
    metrics = {
        "method": method, "guidance": guidance, "dataset": "tiny_style", "model": "tiny", "seed": seed,
        "privacy/epsilon": epsilon, "privacy/target_epsilon": epsilon, "privacy/delta": 1e-5,
        "privacy/private": method.startswith("dp"),
        "privacy/noise_multiplier": 0.0 if math.isinf(epsilon) else 3.0 / epsilon,
        "eval/fid": 60 - 30 * budget + rng.gauss(0, 2), "eval/kid": 0.05 + rng.random() * 0.01,
        "eval/clip_score": 20 + 5 * budget + rng.gauss(0, 0.5),
        "eval/private_style_rate": min(1.0, max(0.0, 0.8 * budget + rng.gauss(0, 0.05))),
        "eval/adapt_set_fraction_copied": max(0.0, 0.1 * budget + rng.gauss(0, 0.01)),
        "eval/accuracy_shape": 0.9 + rng.random() * 0.05, "eval/num_images": 64,
        "time/total_s": 10 + rng.random(), "adapt/cache_hit": 0,
        "config_hash": f"{rng.getrandbits(64):016x}", "git_commit": "synthetic", "version/torch": "2.x",
        "config/seed": seed, "config/method/name": method, "config/guidance/name": guidance,
        "config/privacy/epsilon": epsilon, "config/eval/num_images": 64, "config/dataset/name": "tiny_style",
    }
    for key, value in (knobs or {}).items():
        metrics[f"config/{key.replace('.', '/')}"] = value
    if memorization:
        strength = float(next(iter((knobs or {}).values()), 0.0))
        metrics["eval/memorized_fraction_copied"] = max(0.0, 0.6 - strength + rng.gauss(0, 0.02))
        metrics["eval/memorized_similarity_mean"] = 0.9 - strength / 2
        metrics["eval/clip_score"] -= 4 * strength
    return metrics


def _picture(size: int, colour: tuple[int, int, int], prompt_index: int, seed: int):
    """A ``size`` x ``size`` RGB picture: a band per prompt, a dot pattern per seed."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    band = size // 8
    draw.rectangle([0, (prompt_index % 8) * band, size - 1, (prompt_index % 8 + 1) * band - 1], fill=colour)
    rng = random.Random(seed)
    for _ in range(6):
        x, y = rng.randrange(size), rng.randrange(size)
        r = max(1, size // 16)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(255 - c for c in colour))
    return image


def write_images(run_dir: Path, metrics: dict, images_per_job: int, images_per_prompt: int = 2,
                 size: int = 32) -> Path:
    """``images/*.png`` and ``images/index.jsonl`` as the sampling stage writes them.

    Image seeds depend on the run seed and the item only (as the sampling plan's do), so
    the same prompt and seed recur across methods and epsilons.
    """
    import io

    folder = Path(run_dir) / "images"
    folder.mkdir(parents=True, exist_ok=True)
    eps = metrics["privacy/target_epsilon"]
    hue = random.Random(f"{metrics['method']}/{metrics.get('guidance')}").randrange(0, 200)
    shade = 255 if math.isinf(eps) else int(60 + 190 * eps / (1 + eps))
    colour = (hue, shade, 255 - hue)
    rows = []
    for index in range(images_per_job):
        prompt_index, k = divmod(index, images_per_prompt)
        seed = 1000 * int(metrics["seed"]) + index
        text = PROMPTS[prompt_index % len(PROMPTS)]
        buf = io.BytesIO()
        _picture(size, colour, prompt_index, seed).save(buf, format="PNG")
        file = f"{index:05d}.png"
        atomic_write_bytes(folder / file, buf.getvalue())
        rows.append({"file": file, "index": index, "prompt_index": prompt_index, "seed": seed, "text": text,
                     "original": text.replace(" in the style of <S*>", ""),
                     # A memorization job's even prompts stand for memorized captions.
                     "memorized": "eval/memorized_fraction_copied" in metrics and prompt_index % 2 == 0,
                     "first_step_magnitude": 1.0 + 0.01 * index})
    atomic_write_bytes(folder / "index.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    return folder


def write_job(sweep_dir: Path, num: int, metrics: dict, images_per_job: int = 0, image_size: int = 32) -> Path:
    """One finished job's directory: images (if asked), configs, then ``metrics.json`` last."""
    eps = metrics["privacy/target_epsilon"]
    eps_text = "inf" if math.isinf(eps) else f"{eps:g}"
    name = f"{num}_{metrics['method']}_{metrics.get('guidance', 'none')}_eps{eps_text}_s{metrics['seed']}"
    run_dir = Path(sweep_dir) / name
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    config = {"seed": metrics["seed"], "method": {"name": metrics["method"]},
              "guidance": {"name": metrics.get("guidance", "none")}, "privacy": {"epsilon": eps_text}}
    atomic_write_bytes(run_dir / ".hydra" / "config.yaml", "".join(
        f"{k}: {json.dumps(v)}\n" for k, v in config.items()).encode())  # JSON values are valid YAML
    atomic_write_json(run_dir / "resolved_config.json", config)
    if images_per_job:
        write_images(run_dir, metrics, images_per_job, size=image_size)
    atomic_write_json(run_dir / "metrics.json", metrics)
    return run_dir


def make_synthetic_sweep(sweep_dir: Path, methods: Sequence[str] = ("dpagg_ti", "dpsgd_ti"),
                         epsilons: Sequence[float] = (1.0, 4.0, math.inf), seeds: Sequence[int] = (0, 1, 2),
                         mitigation: Optional[dict[str, Sequence[float]]] = None, images_per_job: int = 0,
                         image_size: int = 32) -> list[dict]:
    """Write one run directory per job; returns the jobs' metrics in job order.

    ``mitigation``: guidance -> strength values; those jobs run ``method=none`` with that
    guidance at epsilon inf, with knob ``guidance.scale`` and memorization metrics.
    """
    jobs = []
    for method in methods:
        for eps in epsilons:
            for seed in seeds:
                jobs.append(synthetic_metrics(method, eps, seed))
    for guidance, strengths in (mitigation or {}).items():
        for strength in strengths:
            for seed in seeds:
                jobs.append(synthetic_metrics("none", math.inf, seed, {"guidance.scale": strength},
                                              memorization=True, guidance=guidance))
    for num, metrics in enumerate(jobs):
        write_job(sweep_dir, num, metrics, images_per_job, image_size)
    return jobs


def make_example_sweep(sweep_dir: Path) -> list[dict]:
    """The committed example (results/reference/synthetic_example): two DP methods over
    epsilon, a mitigation guidance over its knob, 8 images per job, and one job of each
    kind without a result (corrupt, half-written, skipped, failed)."""
    sweep_dir = Path(sweep_dir)
    jobs = make_synthetic_sweep(sweep_dir, methods=("dpagg_ti", "dpsgd_ti"), epsilons=(1.0, 4.0, math.inf),
                                seeds=(0, 1), mitigation={"prss": (0.1, 0.3)}, images_per_job=8)
    n = len(jobs)
    corrupt = write_job(sweep_dir, n, synthetic_metrics("dpsgd_ti", 8.0, 0))
    (corrupt / "metrics.json").write_text('{"method": "dpsgd_ti", "eval/fid": ')  # a half-written record
    half = write_job(sweep_dir, n + 1, synthetic_metrics("dpagg_ti", 8.0, 0), images_per_job=4)
    (half / "metrics.json").unlink()  # killed while evaluating
    skipped = sweep_dir / f"{n + 2}_none_none_strong_s0" / ".hydra"
    skipped.mkdir(parents=True, exist_ok=True)
    (skipped / "config.yaml").write_text("seed: 0\nguidance: {name: none}\nstrength: {name: strong}\n"
                                         "privacy: {epsilon: inf}\n")
    failed = sweep_dir / f"{n + 3}_dpagg_ti_none_eps0.5_s0"
    (failed / ".hydra").mkdir(parents=True, exist_ok=True)
    (failed / "__main__.log").write_text("[2026-12-01 09:00:00,000][benchmark][ERROR] - ConfigError: "
                                         "dpagg_ti: privacy.epsilon=0.5 needs noise multiplier 61 > 50\n")
    return jobs


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m benchmark.report.synthetic <sweep dir>  (writes the example sweep)")
    print(f"{len(make_example_sweep(Path(sys.argv[1])))} finished jobs (and 4 without a result) in {sys.argv[1]}")
