#!/usr/bin/env python
"""How the world's text encoder reacts to a learned TI row: its scale and its noise tolerance.

On Stable Diffusion a textual-inversion row of about the vocabulary's own norm carries a
concept, which is what lets DPAgg-TI bound rows at R = the vocabulary's mean norm and add
noise of that scale. This script measures, on one world model (evaluation only: it reads
the private style; it tunes nothing):

1. the vocabulary's mean row norm, and the norm a free TI row reaches;
2. the private-style rate of free TI and of TI with its row kept at norm <= 2x the
   vocabulary mean (``method.max_norm``, projected after every step);
3. the style rate of each learned row under isotropic Gaussian perturbations of norm
   0.5x, 1x and 2x its own (a random direction, fixed norm; several draws).

    python scripts/measure_world_noise_tolerance.py [--model tiny] [--draws 4] [--out results/world_noise_tolerance]

Only aggregate figures are written (norms and style rates); the learned rows stay in a
temporary folder that is deleted at the end.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from benchmark.adapt.dpagg_ti import vocabulary_mean_norm
from benchmark.config import ModelConfig, compose_config, default_config
from benchmark.lightning.console import quiet_console
from benchmark.models.backbone import load_backbone
from benchmark.run import run
from benchmark.utils.io import atomic_write_bytes, atomic_write_json

FACTORS = (0.5, 1.0, 2.0)
EVALUATION_ONLY = ("aggregate figures of non-private TI on the private style, computed without DP; "
                   "no embedding is stored")
# The DP comparison's evaluation (conf/experiment/dpagg_vs_dpsgd.yaml), without its sweep.
EVAL = ["dataset=tiny_style", "eval=default", "eval.num_images=32", "eval.kid_subset_size=16",
        "eval.sampler.num_inference_steps=20", "logger=none", "privacy=none"]


def job(model: str, overrides: list[str], out: Path) -> dict:
    return run(compose_config([f"model={model}", *EVAL, *overrides]), out)


def perturbed(row: torch.Tensor, factor: float, seed: int) -> torch.Tensor:
    """``row`` plus a uniformly random direction of norm ``factor * |row|``."""
    u = torch.randn(row.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (row.double() + factor * row.double().norm() * u / u.norm()).to(row.dtype)


def measure(model: str, draws: int, work: Path) -> dict:
    vocab = vocabulary_mean_norm(load_backbone(default_config(ModelConfig, f"model={model}")))
    rows = {}
    result = {"model": model, "evaluation_only": EVALUATION_ONLY, "vocabulary_mean_norm": vocab, "draws": draws,
              "learned": {}}
    for name, extra in (("free", []), ("max_norm_2x_vocab", [f"method.max_norm={2 * vocab}"])):
        metrics = job(model, ["method=ti", *extra], work / name)
        rows[name] = load_file(work / name / "learned_embeds.safetensors")["<S*>"]
        norm = float(rows[name].norm())
        result["learned"][name] = {"style_rate": metrics["eval/private_style_rate"], "norm": norm,
                                   "norm_over_vocabulary_mean": norm / vocab, "perturbed": {}}
        for factor in FACTORS:
            rates = []
            for d in range(draws):
                path = work / f"{name}-x{factor}-{d}.safetensors"
                save_file({"<S*>": perturbed(rows[name], factor, seed=1000 * d + int(10 * factor))}, path)
                m = job(model, ["method=embedding_file", f"method.path={path}"], work / path.stem)
                rates.append(m["eval/private_style_rate"])
            result["learned"][name]["perturbed"][str(factor)] = {
                "mean": statistics.mean(rates), "std": statistics.stdev(rates) if draws > 1 else 0.0,
                "rates": rates}
    return result


def markdown(r: dict, command: str, seconds: float) -> str:
    lines = [f"# The world's embedding space: scale and noise tolerance of a learned TI row (`model={r['model']}`)",
             "", f"Evaluation only: {r['evaluation_only']}. Nothing here is tuned on these figures.",
             "", f"Vocabulary mean row norm: **{r['vocabulary_mean_norm']:.3f}**.", "",
             "| TI row | norm | norm / vocab mean | style rate | +noise 0.5x | +noise 1x | +noise 2x |",
             "|---|---|---|---|---|---|---|"]
    for name, v in r["learned"].items():
        cells = [f"{v['perturbed'][str(f)]['mean']:.2f} ± {v['perturbed'][str(f)]['std']:.2f}" for f in FACTORS]
        lines.append(f"| {name} | {v['norm']:.3f} | {v['norm_over_vocabulary_mean']:.1f} | {v['style_rate']:.2f} | "
                     + " | ".join(cells) + " |")
    lines += ["", f"Noise: a uniformly random direction scaled to 0.5x, 1x, 2x the row's own norm, {r['draws']} "
              "draws each (mean ± std of the style rate over draws); 32 generations at 20 DDIM steps each.",
              "", f"Command: `{command}` ({seconds / 60:.1f} min on this machine).", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--draws", type=int, default=4)
    p.add_argument("--out", type=Path, help="write <out>.json and <out>.md")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_console()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # the trainer's banner, once per job
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="noise-tolerance-") as work:
        result = measure(args.model, args.draws, Path(work))
    text = markdown(result, f"python scripts/measure_world_noise_tolerance.py --model {args.model} --draws {args.draws}"
                            + (f" --out {args.out}" if args.out else ""), time.perf_counter() - start)
    print(text)
    if args.out:
        atomic_write_json(args.out.with_suffix(".json"), result)
        atomic_write_bytes(args.out.with_suffix(".md"), text.encode())


if __name__ == "__main__":
    main()
