"""``python -m benchmark.report <sweep dir>``: summary.md, summary.csv and the plots.

Writes into the sweep directory (or ``--out``): ``summary.md``, ``summary.csv`` (one row
per method x epsilon [x knobs], mean and std over seeds of every metric),
``utility_vs_epsilon.png`` and, when the runs report memorization,
``memorization_vs_alignment.png``. The main table's columns are the declared metrics
(benchmark/metrics/catalog.py) the runs report, marked ↑/↓ by their better direction,
memorization columns (copying, per-group CLIP score, detection AUC, trigger rates)
included. Files are written atomically. Corrupt or missing results are skipped with a
warning naming them; the report never stops on them.
With ``--wandb`` and W&B online (an account configured), the summary table is also
logged to a W&B run of job type ``report`` in the sweep's group.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from benchmark.report.plots import (DEFAULT_ALIGNMENT_METRIC, DEFAULT_MEMORIZATION_METRICS,
                                    DEFAULT_UTILITY_METRICS, plot_memorization_vs_alignment,
                                    plot_utility_vs_epsilon)
from benchmark.report.render import default_columns, to_csv, to_markdown, write_text
from benchmark.report.sweep import SweepSummary, summarize

log = logging.getLogger(__name__)


def make_report(sweep_dir: Path, out: Optional[Path] = None, by: Optional[Sequence[str]] = None,
                replicates: Optional[Sequence[str]] = None,
                utility_metrics: Sequence[str] = DEFAULT_UTILITY_METRICS,
                memorization_metrics: Sequence[str] = DEFAULT_MEMORIZATION_METRICS,
                alignment_metric: str = DEFAULT_ALIGNMENT_METRIC) -> tuple[SweepSummary, dict[str, Path]]:
    """Summarize ``sweep_dir`` and write the report files; returns the summary and the paths."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {sweep_dir} does not exist")
    out = Path(out) if out else sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(sweep_dir, by=by, replicates=replicates)
    if not summary.rows:
        summary.skipped.insert(0, f"{sweep_dir}: no finished runs (no readable metrics.json)")
        log.warning("no finished runs (no readable metrics.json) under %s", sweep_dir)
    paths: dict[str, Path] = {}
    notes = []
    if summary.rows:
        for name, (path, note) in {
            "utility": plot_utility_vs_epsilon(summary, out / "utility_vs_epsilon.png", utility_metrics),
            "memorization": plot_memorization_vs_alignment(summary, out / "memorization_vs_alignment.png",
                                                           memorization_metrics, alignment_metric),
        }.items():
            notes.append(note)
            if path is not None:
                paths[name] = path
    # The declared metrics (memorization, detection and trigger columns included), then any other asked-for ones.
    main = default_columns(summary)
    headline = [*main, *[m for m in utility_metrics if m not in main]]
    paths["csv"] = write_text(out / "summary.csv", to_csv(summary))
    paths["md"] = write_text(out / "summary.md", to_markdown(summary, headline, notes))
    return summary, paths


def log_to_wandb(summary: SweepSummary, group: str, project: str = "dp-diffusion-bench") -> bool:
    """The summary table as a W&B run (job type ``report``) in ``group``; only when online."""
    has_account = os.environ.get("WANDB_API_KEY") or Path.home().joinpath(".netrc").exists()
    if os.environ.get("WANDB_MODE", "online") != "online" or not has_account:
        log.info("W&B is not online: the report is in the files only")
        return False
    import csv
    import io

    import wandb

    rows = list(csv.reader(io.StringIO(to_csv(summary))))
    run = wandb.init(project=project, group=group, job_type="report", name=f"report-{group}")
    try:
        run.log({"summary": wandb.Table(columns=rows[0], data=rows[1:])})
    finally:
        wandb.finish()
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a Hydra sweep directory (or any folder of run directories)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the sweep directory)")
    parser.add_argument("--by", default=None,
                        help="comma-separated config keys to key rows on besides method and epsilon "
                             "(default: the keys that vary between a method's jobs of one seed)")
    parser.add_argument("--replicates", default="seed",
                        help="comma-separated config keys whose values are repetitions averaged over "
                             "(default: seed; e.g. seed,method.mechanism_seed)")
    parser.add_argument("--utility-metrics", default=",".join(DEFAULT_UTILITY_METRICS))
    parser.add_argument("--memorization-metrics", default=",".join(DEFAULT_MEMORIZATION_METRICS),
                        help="the first one the runs report is plotted")
    parser.add_argument("--alignment-metric", default=DEFAULT_ALIGNMENT_METRIC,
                        help="x axis of the memorization plot; comma-separated: the first one the runs report")
    parser.add_argument("--wandb", action="store_true", help="also log the table to W&B when online")
    parser.add_argument("--group", default=None, help="W&B group (default: the sweep directory's name)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    start = time.perf_counter()
    split = lambda text: [t for t in text.split(",") if t]  # noqa: E731
    try:
        summary, paths = make_report(args.sweep_dir, args.out, split(args.by) if args.by is not None else None,
                                     split(args.replicates), split(args.utility_metrics), split(args.memorization_metrics),
                                     args.alignment_metric)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for message in summary.skipped:
        print(f"warning: skipped {message}", file=sys.stderr)
    if args.wandb:
        log_to_wandb(summary, args.group or args.sweep_dir.resolve().name)
    print(f"{summary.num_jobs} jobs, {len(summary.rows)} rows in {time.perf_counter() - start:.2f} s")
    for path in paths.values():
        print(f"wrote {path}")
    return 0
