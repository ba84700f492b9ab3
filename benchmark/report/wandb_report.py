"""``--wandb``: the report's table and gallery as a W&B run (job type ``report``) in the sweep's group.

The same numbers and images as ``report.html``: ``summary`` (every metric, as
``summary.csv``), ``headline`` (the page's table: mean ± std text plus the means, with the
DP-release / evaluation-only class of each column in its name) and ``gallery`` (one row
per table row, one ``wandb.Image`` per prompt and seed column), and the plots. Online when W&B is
configured (``WANDB_API_KEY`` or ``~/.netrc``) and ``WANDB_MODE`` is not offline;
otherwise offline into ``<out>/wandb`` (``wandb sync`` uploads it later). Only
generations and metrics are logged, never private data.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path
from typing import Optional, Sequence

from benchmark.report.gallery import Gallery
from benchmark.report.html import visibility
from benchmark.report.render import epsilon_text, to_csv, value_text
from benchmark.report.sweep import SweepSummary

log = logging.getLogger(__name__)
PROJECT = "dp-diffusion-bench"


def wandb_mode() -> str:
    """``online`` only with an account and WANDB_MODE unset or online; else ``offline``."""
    has_account = os.environ.get("WANDB_API_KEY") or Path.home().joinpath(".netrc").exists()
    mode = os.environ.get("WANDB_MODE", "online")
    return "online" if mode == "online" and has_account else ("disabled" if mode == "disabled" else "offline")


def headline_rows(summary: SweepSummary, headline: Sequence[str]) -> tuple[list[str], list[list]]:
    """The page's table as columns and rows: identity, knobs, then ``<metric>`` text and ``<metric> mean``."""
    metrics = [m for m in headline if m in summary.metrics]
    columns = ["row", "method", "guidance", "epsilon", *summary.knob_columns, "n_seeds"]
    for m in metrics:
        tag = visibility(m) or "other"
        columns += [f"{m} [{tag}]", f"{m} mean"]
    rows = []
    for row in summary.rows:
        line = [row.label, row.method, row.guidance, epsilon_text(row.epsilon),
                *[value_text(row.knobs.get(k)) for k in summary.knob_columns], len(row.jobs)]
        for m in metrics:
            if m not in row.stats:
                line += ["", None]
                continue
            mean, std, _ = row.stats[m]
            line += [f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}",
                     mean if math.isfinite(mean) else None]
        rows.append(line)
    return columns, rows


def log_report(summary: SweepSummary, headline: Sequence[str], gallery: Gallery, group: str, out: Path,
               plots: Optional[dict[str, Path]] = None, project: str = PROJECT) -> Optional[Path]:
    """Log the tables and the gallery; returns the W&B run's local directory (None when disabled)."""
    mode = wandb_mode()
    if mode == "disabled":
        log.info("WANDB_MODE=disabled: the report is in the files only")
        return None
    import wandb

    run = wandb.init(project=project, group=group, job_type="report", name=f"report-{group}", dir=str(out),
                     mode=mode, config={"sweep_dir": str(summary.sweep_dir), "num_jobs": summary.num_jobs})
    try:
        every = list(csv.reader(io.StringIO(to_csv(summary))))
        columns, rows = headline_rows(summary, headline)
        image_columns = [f"p{p} s{s}: {text[:30]}" for p, s, text in gallery.columns]
        images = []
        for entry in gallery.rows:
            cells = [entry.cells.get((p, s)) for p, s, _ in gallery.columns]
            images.append([entry.row.label, epsilon_text(entry.row.epsilon),
                           *[wandb.Image(str(c.path), caption=c.title) if c else None for c in cells]])
        run.log({"summary": wandb.Table(columns=every[0], data=every[1:]),
                 "headline": wandb.Table(columns=columns, data=rows),
                 "gallery": wandb.Table(columns=["row", "epsilon", *image_columns], data=images),
                 **{f"plots/{name}": wandb.Image(str(path)) for name, path in (plots or {}).items()}})
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    log.info("W&B report run (%s) in group %s: %s", mode, group, run_dir)
    return run_dir
