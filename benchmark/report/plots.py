"""Privacy-utility plots of a sweep summary (matplotlib, Agg backend, PNG written atomically).

- ``utility_vs_epsilon.png``: one panel per utility metric, one line per method (and
  knob setting), mean ± std over seeds; epsilon on a log axis, ``inf`` (non-private)
  drawn at a marked position right of the largest finite epsilon; beside them, in the
  same figure, the membership-inference attack AUCs (``privacy/mia_*_auc``, evaluation
  only) with the chance level 0.5, when the runs report them.
- ``memorization_vs_alignment.png``: per (method, guidance) that reports the memorization metric,
  its points (one per knob setting / epsilon) in the plane CLIP score x memorization:
  the privacy-utility curve of a mitigation method.
A plot whose metrics no row has is skipped; the returned note says why.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Optional, Sequence

from benchmark.report.sweep import Row, SweepSummary
from benchmark.utils.io import atomic_write_bytes

DEFAULT_UTILITY_METRICS = ("eval/private_style_rate", "eval/fid", "eval/clip_score", "eval/accuracy_shape")
DEFAULT_ATTACK_METRICS = ("privacy/mia_loss_auc", "privacy/mia_loss_calibrated_auc", "privacy/mia_similarity_auc")
DEFAULT_MEMORIZATION_METRICS = ("eval/memorized_fraction_copied", "eval/memorized_similarity_mean")
DEFAULT_ALIGNMENT_METRIC = "eval/memorized_clip_score,eval/clip_score"  # the first one the runs report


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def _series(rows: Sequence[Row], split_by_knobs: bool = True) -> dict[str, list[Row]]:
    series: dict[str, list[Row]] = {}
    for row in rows:
        series.setdefault(row.label if split_by_knobs else row.name, []).append(row)
    return series


def plot_utility_vs_epsilon(summary: SweepSummary, path: Path, metrics: Sequence[str] = DEFAULT_UTILITY_METRICS,
                            attack_metrics: Sequence[str] = DEFAULT_ATTACK_METRICS) -> tuple[Optional[Path], str]:
    attacks = [m for m in attack_metrics if m not in metrics and any(m in r.stats for r in summary.rows)]
    present = [m for m in metrics if any(m in r.stats for r in summary.rows)] + attacks
    if not present:
        return None, f"utility vs epsilon: skipped, no row has any of {', '.join(metrics)}"
    finite = sorted({r.epsilon for r in summary.rows if math.isfinite(r.epsilon) and r.epsilon > 0})
    if not finite:  # e.g. a memorization sweep: every method is non-private
        return None, "utility vs epsilon: skipped, every run is at epsilon = inf"
    inf_x = finite[-1] * 4.0

    def x_of(eps: float) -> float:
        return inf_x if math.isinf(eps) else eps

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.6), squeeze=False)
    series = _series(summary.rows)
    for ax, metric in zip(axes[0], present):
        for label, rows in series.items():
            pts = sorted((x_of(r.epsilon), r.mean(metric), r.std(metric)) for r in rows if metric in r.stats)
            if not pts:
                continue
            xs, ys, es = zip(*pts)
            es = [0.0 if (e is None or math.isnan(e)) else e for e in es]
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        ticks = finite + [inf_x]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in finite] + ["∞"])
        ax.minorticks_off()
        if finite:
            ax.axvline(math.sqrt(finite[-1] * inf_x), color="0.7", linestyle=":", linewidth=1)
        ax.set_xlabel("epsilon (∞: non-private)")
        ax.set_title(metric if metric not in attacks else f"{metric}\n(attack; eval only, private data)", fontsize=9)
        if metric in attacks:  # an attack AUC: 0.5 is chance, what a perfect DP release would allow at eps -> 0
            ax.axhline(0.5, color="0.4", linestyle="--", linewidth=1)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle("utility" + (" and membership-inference AUC" if attacks else "")
                 + " vs privacy budget (mean ± std over seeds)", fontsize=10)
    _save(fig, path)
    plt.close(fig)
    return path, f"utility vs epsilon: `{path.name}` ({', '.join(present)})"


def plot_memorization_vs_alignment(summary: SweepSummary, path: Path,
                                   memorization_metrics: Sequence[str] = DEFAULT_MEMORIZATION_METRICS,
                                   alignment: str = DEFAULT_ALIGNMENT_METRIC) -> tuple[Optional[Path], str]:
    candidates = [a for a in alignment.split(",") if a]
    alignment = next((a for a in candidates if any(a in r.stats for r in summary.rows)), candidates[-1])
    metric = next((m for m in memorization_metrics if any(m in r.stats for r in summary.rows)), None)
    if metric is None:
        return None, (f"memorization vs {alignment}: skipped, no row has a memorization metric "
                      f"({', '.join(memorization_metrics)})")
    rows = [r for r in summary.rows if metric in r.stats and alignment in r.stats]
    if not rows:
        return None, f"memorization vs {alignment}: skipped, no row has both {metric} and {alignment}"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for method, group in _series(rows, split_by_knobs=False).items():
        pts = sorted(((r.mean(alignment), r.mean(metric), r.std(alignment), r.std(metric), r) for r in group),
                     key=lambda p: p[0])
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        xe = [0.0 if math.isnan(p[2]) else p[2] for p in pts]
        ye = [0.0 if math.isnan(p[3]) else p[3] for p in pts]
        ax.errorbar(xs, ys, xerr=xe, yerr=ye, marker="o", capsize=3, label=method)
        for x, y, _, _, r in pts:
            knob = ", ".join(f"{str(v)}" for v in r.knobs.values())
            if knob:
                ax.annotate(knob, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{alignment} (higher: better prompt alignment)")
    ax.set_ylabel(f"{metric} (lower: less memorization)")
    ax.set_title("memorization vs prompt alignment per guidance (mitigation) method", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)
    return path, f"memorization vs alignment: `{path.name}` ({metric} vs {alignment})"


# Config keys that are the size of the private adaptation set (the "n axis" of a sweep).
N_AXIS_SUFFIXES = ("num_adapt", "max_adapt_images", "num_private")


def n_axis(summary: SweepSummary) -> Optional[str]:
    """The knob column that is the adaptation set's size, when the sweep varies it numerically."""
    for knob in summary.knob_columns:
        values = {r.knobs.get(knob) for r in summary.rows}
        if knob.endswith(N_AXIS_SUFFIXES) and len(values) > 1 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return knob
    return None


def plot_utility_vs_n(summary: SweepSummary, path: Path,
                      metrics: Sequence[str] = DEFAULT_UTILITY_METRICS) -> tuple[Optional[Path], str]:
    """``utility_vs_n.png``: each utility metric against the adaptation set's size, per method and epsilon."""
    knob = n_axis(summary)
    if knob is None:
        return None, "utility vs n: skipped, the sweep does not vary the adaptation set's size"
    present = [m for m in metrics if any(m in r.stats and knob in r.knobs for r in summary.rows)]
    if not present:
        return None, f"utility vs n: skipped, no row with {knob} has any of {', '.join(metrics)}"
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.6), squeeze=False)
    series: dict[str, list[Row]] = {}
    for row in summary.rows:
        if knob in row.knobs:
            others = ", ".join(f"{k}={v}" for k, v in row.knobs.items() if k != knob)
            eps = "∞" if math.isinf(row.epsilon) else f"{row.epsilon:g}"
            series.setdefault(f"{row.name} ε={eps}" + (f" ({others})" if others else ""), []).append(row)
    for ax, metric in zip(axes[0], present):
        for label, rows in series.items():
            pts = sorted((float(r.knobs[knob]), r.mean(metric), r.std(metric)) for r in rows if metric in r.stats)
            if pts:
                xs, ys, es = zip(*pts)
                ax.errorbar(xs, ys, yerr=[0.0 if math.isnan(e) else e for e in es], marker="o", capsize=3,
                            label=label)
        ax.set_xscale("log")
        sizes = sorted({float(r.knobs[knob]) for rows in series.values() for r in rows})
        ax.set_xticks(sizes, [f"{n:g}" for n in sizes])  # the swept sizes, not crowded log-minor labels
        ax.minorticks_off()
        ax.set_xlabel(f"n ({knob})")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle("utility vs size of the private set (mean ± std over seeds)", fontsize=10)
    _save(fig, path)
    plt.close(fig)
    return path, f"utility vs n: `{path.name}` ({knob}; {', '.join(present)})"
