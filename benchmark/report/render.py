"""Render a sweep summary: CSV (full precision) and Markdown (mean ± std, directions marked)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

from benchmark.metrics.catalog import declared_keys
from benchmark.report.sweep import Row, SweepSummary
from benchmark.utils.io import atomic_write_bytes

ARROWS = {True: " ↑", False: " ↓", None: ""}


def default_columns(summary: SweepSummary) -> list[str]:
    """The main table's metrics: every declared key with a better direction that a row
    reports, in declaration order (fidelity, alignment, concept, memorization, detection,
    trigger), after the spent epsilon."""
    keys = [k.name for k in declared_keys().values() if k.higher_is_better is not None]
    return [m for m in ("privacy/epsilon", *keys) if m in summary.metrics]


def column_header(metric: str) -> str:
    """The metric's name with ↑ (higher is better) or ↓ (lower is better) when it declares one."""
    key = declared_keys().get(metric)
    return metric + ARROWS[key.higher_is_better if key else None]


def epsilon_text(eps: float) -> str:
    return "inf" if math.isinf(eps) else f"{eps:g}"


def value_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def to_csv(summary: SweepSummary) -> str:
    """One row per (method, guidance, epsilon, knobs): ``<metric>_mean``, ``<metric>_std`` (full precision)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["method", "guidance", "epsilon", *summary.knob_columns, "n_seeds", "seeds"]
    for metric in summary.metrics:
        header += [f"{metric}_mean", f"{metric}_std"]
    writer.writerow(header)
    for row in summary.rows:
        line = [row.method, row.guidance, epsilon_text(row.epsilon), *[value_text(row.knobs.get(k)) for k in summary.knob_columns],
                len(row.jobs), " ".join(str(s) for s in row.seeds)]
        for metric in summary.metrics:
            if metric in row.stats:
                mean, std, _ = row.stats[metric]
                line += [repr(mean), repr(std)]
            else:
                line += ["", ""]
        writer.writerow(line)
    return buf.getvalue()


def _cell(row: Row, metric: str) -> str:
    if metric not in row.stats:
        return ""
    mean, std, _ = row.stats[metric]
    return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def _table(summary: SweepSummary, metrics: Sequence[str]) -> list[str]:
    head = ["method", "guidance", "epsilon", *summary.knob_columns, "seeds", *map(column_header, metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary.rows:
        cells = [row.method, row.guidance, epsilon_text(row.epsilon), *[value_text(row.knobs.get(k)) for k in summary.knob_columns],
                 ",".join(str(s) for s in row.seeds), *[_cell(row, m) for m in metrics]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def to_markdown(summary: SweepSummary, headline: Sequence[str] | None = None, notes: Sequence[str] = ()) -> str:
    """The main metrics table (``headline``, default :func:`default_columns`), then every
    metric (mean ± std over seeds; ↑/↓: the declared better direction), then what was skipped."""
    out = [f"# Sweep summary: `{summary.sweep_dir}`", "",
           f"{summary.num_jobs} finished jobs in {len(summary.rows)} rows (method x guidance x epsilon"
           f"{' x ' + ' x '.join(summary.knob_columns) if summary.knob_columns else ''}); "
           "cells are mean ± std over seeds (sample std; a single seed shows the value alone).", ""]
    if not summary.rows:
        out += ["**No finished runs** (no readable `metrics.json`) in this directory.", ""]
    else:
        main = [m for m in (default_columns(summary) if headline is None else headline) if m in summary.metrics]
        if main:
            out += ["## Main metrics", "", *_table(summary, main), ""]
        out += ["## Every metric", "", *_table(summary, summary.metrics), ""]
    if notes:
        out += ["## Plots", "", *[f"- {n}" for n in notes], ""]
    if summary.skipped:
        out += ["## Skipped", "", *[f"- {s}" for s in summary.skipped], ""]
    return "\n".join(out)


def write_text(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode())
    return path
