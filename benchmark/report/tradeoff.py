"""How much memorization each mitigation removes for the prompt alignment it costs.

    python -m benchmark.report.tradeoff outputs/sweeps/memorization_tradeoff --out results/reference/memorization_tradeoff

Per seed, the job without mitigation (guidance ``none``) is the point (c0, f0): CLIP
score and copy fraction on the memorized prompts. Each knob level of a mitigation is a
point (c, f); in the plane of alignment cost ``x = c0 - c`` (clipped at 0) and
memorization removed ``y = f0 - f``, the method's *frontier* at cost x is the best y of
its points costing at most x (0 where none does: the no-mitigation point itself).
Its **trade-off area** is the area under that step frontier for x in [0, X], over the
area ``X * f0`` of a method that removes all copying at no cost: 1 is that ideal, 0
removes nothing within cost X. X (``--max-cost``, default 30 CLIP points) is the same for
every method, so areas compare. Seeds give mean ± std; a method *dominates* another when
its area is higher on every seed both ran.

Evaluation-only: the inputs are non-private runs on public world captions.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Optional, Sequence

from benchmark.report.render import write_text
from benchmark.report.sweep import load_jobs

CLIP, COPIED = "eval/memorized_clip_score", "eval/memorized_fraction_copied"
NO_MITIGATION = "none"


def frontier_area(origin: tuple[float, float], points: Sequence[tuple[float, float]], max_cost: float) -> float:
    """Normalised area under the step frontier of ``points`` (clip, copied) from ``origin``."""
    c0, f0 = origin
    if f0 <= 0:
        return float("nan")  # nothing was copied: nothing to remove
    gains = sorted((max(0.0, c0 - c), f0 - f) for c, f in points)
    area, best, x_prev = 0.0, 0.0, 0.0
    for x, y in gains:
        x = min(x, max_cost)
        area += best * (x - x_prev)
        best, x_prev = max(best, y), x
    area += best * (max_cost - x_prev)
    return area / (max_cost * f0)


def tradeoff_areas(sweep_dir: Path, max_cost: float = 30.0) -> dict[str, dict]:
    """Per mitigation: its area per seed (each against that seed's no-mitigation job)."""
    jobs, _ = load_jobs(sweep_dir)
    origin, points = {}, {}
    for job in jobs:
        if CLIP not in job.metrics or COPIED not in job.metrics:
            continue
        point = (float(job.metrics[CLIP]), float(job.metrics[COPIED]))
        if job.guidance == NO_MITIGATION:
            origin[job.seed] = point
        else:
            points.setdefault(job.guidance, {}).setdefault(job.seed, []).append(point)
    if not origin:
        raise ValueError(f"{sweep_dir}: no finished guidance={NO_MITIGATION} job reports {CLIP} and {COPIED}")
    table = {}
    for guidance, by_seed in sorted(points.items()):
        areas = {seed: frontier_area(origin[seed], pts, max_cost) for seed, pts in sorted(by_seed.items(), key=str)
                 if seed in origin}
        table[guidance] = {"areas": areas, "levels": max(len(p) for p in by_seed.values())}
    for guidance, row in table.items():
        row["dominates"] = [other for other, o in table.items() if other != guidance and
                            (common := set(row["areas"]) & set(o["areas"])) and
                            all(row["areas"][s] > o["areas"][s] for s in common)]
    return table


def to_markdown(table: dict, sweep_dir: Path, max_cost: float) -> str:
    lines = ["# Memorization trade-off areas (evaluation only)", "",
             f"Command: `python -m benchmark.report.tradeoff {sweep_dir} --max-cost {max_cost:g}`. Area under each "
             f"mitigation's frontier of memorized-copy fraction removed against memorized-prompt CLIP score lost, "
             f"from the no-mitigation point up to a cost of {max_cost:g} CLIP points; 1 = all copying removed at no "
             "cost. Per seed against that seed's `guidance=none` job.", "",
             "| guidance | knob levels | seeds | area (mean ± std) | per seed | higher on every seed than |",
             "|---|---|---|---|---|---|"]
    for guidance, row in table.items():
        values = list(row["areas"].values())
        spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
        per_seed = ", ".join(f"{s}: {a:.3f}" for s, a in row["areas"].items())
        lines.append(f"| {guidance} | {row['levels']} | {len(values)} | {statistics.fmean(values):.3f}{spread} | "
                     f"{per_seed} | {', '.join(row['dominates']) or '-'} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: the sweep directory")
    p.add_argument("--max-cost", type=float, default=30.0, help="X: CLIP points of alignment cost considered")
    args = p.parse_args(argv)
    if args.max_cost <= 0:
        p.error(f"--max-cost: must be positive, got {args.max_cost}")
    try:
        table = tradeoff_areas(args.sweep_dir, args.max_cost)
    except ValueError as err:
        print(f"error: {err}")
        return 2
    out = args.out or args.sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    text = to_markdown(table, args.sweep_dir, args.max_cost)
    write_text(out / "tradeoff.md", text)
    write_text(out / "tradeoff.json", json.dumps({"max_cost": args.max_cost, "areas": table}, indent=1,
                                                 default=str) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
