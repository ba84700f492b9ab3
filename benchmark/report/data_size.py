"""How many private images a DP method needs: ``n_needed.md`` of a sweep over the set's size.

For every DP method and finite epsilon of a sweep that varies the adaptation set's size
(``experiment=dp_by_n``), the style rate at each n as a fraction of the same method's
epsilon = inf rate at that n, and the smallest n where the fraction reaches ``fraction``
(default 0.8: "DPAgg-TI at epsilon 1 reaches 80% of its own noise-free rate"), beside
what every other method scores at that n and epsilon. Figures are seed means.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from benchmark.report.plots import n_axis
from benchmark.report.render import epsilon_text, write_text
from benchmark.report.sweep import SweepSummary

DEFAULT_METRIC = "eval/private_style_rate"


def rates(summary: SweepSummary, metric: str = DEFAULT_METRIC) -> dict[tuple[str, float, float], float]:
    """``(method, epsilon, n) -> mean metric`` over the rows of the sweep's n axis (empty without one)."""
    knob = n_axis(summary)
    if knob is None:
        return {}
    return {(r.name, r.epsilon, float(r.knobs[knob])): r.mean(metric)
            for r in summary.rows if knob in r.knobs and r.mean(metric) is not None}


def smallest_n(summary: SweepSummary, metric: str = DEFAULT_METRIC,
               fraction: float = 0.8) -> dict[tuple[str, float], dict]:
    """Per (method, finite epsilon): ``{"ratios": {n: rate / inf rate}, "n": smallest n with
    ratio >= fraction or None}``. An n where the method's inf rate is missing or 0 has no ratio."""
    rate = rates(summary, metric)
    out: dict[tuple[str, float], dict] = {}
    for (name, eps, n), value in sorted(rate.items()):
        if math.isinf(eps):
            continue
        entry = out.setdefault((name, eps), {"ratios": {}, "n": None})
        reference = rate.get((name, math.inf, n))
        if reference:
            entry["ratios"][n] = value / reference
            if entry["n"] is None and value >= fraction * reference:
                entry["n"] = n
    return out


def to_markdown(summary: SweepSummary, metric: str = DEFAULT_METRIC, fraction: float = 0.8) -> Optional[str]:
    table = smallest_n(summary, metric, fraction)
    if not table:
        return None
    knob = n_axis(summary)
    rate = rates(summary, metric)
    ns = sorted({n for (_, _, n) in rate})
    lines = [f"# Private images needed: `{metric}` at a finite epsilon / the same method's at epsilon = inf", "",
             f"From `{summary.sweep_dir}` (seed means; `{knob}` is n). Each cell: the rate, and in brackets "
             f"its fraction of the method's epsilon = inf rate at that n. Last column: the smallest n "
             f"where the fraction reaches {fraction:g}.", "",
             "| method | epsilon | " + " | ".join(f"n = {n:g}" for n in ns) + f" | smallest n at {fraction:g} |",
             "|---|---|" + "---|" * len(ns) + "---|"]
    for (name, eps), entry in sorted(table.items()):
        cells = []
        for n in ns:
            value = rate.get((name, eps, n))
            ratio = entry["ratios"].get(n)
            cells.append("" if value is None else f"{value:.2f}" + ("" if ratio is None else f" ({ratio:.2f})"))
        found = "not reached" if entry["n"] is None else f"{entry['n']:g}"
        lines.append(f"| {name} | {epsilon_text(eps)} | " + " | ".join(cells) + f" | {found} |")
    for (name, eps), entry in sorted(table.items()):
        if entry["n"] is None:
            continue
        others = [f"{other} {rate[(other, eps, entry['n'])]:.2f}" for (other, e) in sorted(table)
                  if e == eps and other != name and (other, eps, entry["n"]) in rate]
        lines.append("")
        lines.append(f"- {name} at epsilon {epsilon_text(eps)} reaches {fraction:g} of its epsilon = inf rate "
                     f"at n = {entry['n']:g}" + (f"; there: {', '.join(others)}." if others else "."))
    return "\n".join(lines) + "\n"


def write_n_needed(summary: SweepSummary, out: Path, metric: str = DEFAULT_METRIC) -> Optional[Path]:
    """Write ``<out>/n_needed.md`` when the sweep varies n and has DP rows; else write nothing."""
    text = to_markdown(summary, metric)
    return None if text is None else write_text(Path(out) / "n_needed.md", text)
