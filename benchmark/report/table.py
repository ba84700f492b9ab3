"""Plain-text tables of run metrics for the terminal."""

from __future__ import annotations

GROUP_ORDER = ("privacy/", "adapt/", "eval/", "time/")


def format_metrics_table(metrics: dict) -> str:
    """The metrics a person reads after a run, grouped, one per line, numbers aligned."""
    head = f"{metrics.get('method')} on {metrics.get('dataset')} ({metrics.get('model')}, seed {metrics.get('seed')})"
    rows = []
    for prefix in GROUP_ORDER:
        for key in sorted(k for k in metrics if k.startswith(prefix)):
            value = metrics[key]
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            rows.append((key, text))
    width = max((len(k) for k, _ in rows), default=10)
    lines = [head, "-" * (width + 14)] + [f"{k:<{width}}  {v:>12}" for k, v in rows]
    return "\n".join(lines)
