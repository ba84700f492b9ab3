"""``python -m benchmark.report <sweep dir>``: report.html, summary.md, summary.csv and the plots.

Writes into the sweep directory (or ``--out``): ``report.html`` (the page researchers
look at: sortable headline table, plots, gallery, runs, jobs without a result;
:mod:`benchmark.report.html`), ``summary.md``, ``summary.csv`` (one row per method x
guidance x epsilon [x knobs], mean and std over seeds of every metric),
``utility_vs_epsilon.png`` (with the membership-inference AUCs beside utility when the
runs report them), ``mia_pooled.md``/``.json`` (:mod:`benchmark.report.mia_pool`) when
runs wrote membership scores, and, when the runs report memorization,
``memorization_vs_alignment.png``; a sweep over the private set's size also gets
``utility_vs_n.png`` and ``n_needed.md`` (:mod:`benchmark.report.data_size`). The main
table's columns are the declared metrics (benchmark/metrics/catalog.py) the runs report,
marked ↑/↓ by their better direction, memorization columns (copying, per-group CLIP
score, detection AUC, trigger rates) included. Files are written atomically. Corrupt or missing results are skipped with a
warning naming them; the report never stops on them.
With ``--wandb`` the summary table and the gallery are also logged to a W&B run of job
type ``report`` in the sweep's group (:mod:`benchmark.report.wandb_report`; offline, into
``<out>/wandb``, when there is no account or ``WANDB_MODE=offline``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from benchmark.report.plots import (DEFAULT_ALIGNMENT_METRIC, DEFAULT_MEMORIZATION_METRICS,
                                    DEFAULT_UTILITY_METRICS, plot_memorization_vs_alignment,
                                    plot_utility_vs_epsilon, plot_utility_vs_n)
from benchmark.report.data_size import write_n_needed
from benchmark.report.gallery import ImageLinker, build_gallery
from benchmark.report.html import render_html, write_html
from benchmark.report.render import default_columns, to_csv, to_markdown, write_text
from benchmark.report.runs import problems as find_problems
from benchmark.report.sweep import SweepSummary, summarize

log = logging.getLogger(__name__)


def make_report(sweep_dir: Path, out: Optional[Path] = None, by: Optional[Sequence[str]] = None,
                replicates: Optional[Sequence[str]] = None,
                utility_metrics: Sequence[str] = DEFAULT_UTILITY_METRICS,
                memorization_metrics: Sequence[str] = DEFAULT_MEMORIZATION_METRICS,
                alignment_metric: str = DEFAULT_ALIGNMENT_METRIC, images_per_prompt: int = 2,
                max_prompts: int = 12, embed_images: Optional[bool] = None,
                wandb_group: Optional[str] = None) -> tuple[SweepSummary, dict[str, Path]]:
    """Summarize ``sweep_dir`` and write the report files; returns the summary and the paths.

    ``embed_images``: embed the gallery's images as data URIs (default: only when they lie
    outside ``out``, so the written folder is self-contained either way). ``wandb_group``:
    also log the table and the gallery to a W&B report run in that group.
    """
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
            "n": plot_utility_vs_n(summary, out / "utility_vs_n.png", utility_metrics),
        }.items():
            notes.append(note)
            if path is not None:
                paths[name] = path
    if "n" in paths:  # a sweep over the private set's size: how many images each DP method needs
        needed = write_n_needed(summary, out)
        if needed is not None:
            paths["n_needed"] = needed
            notes.append(f"private images needed per DP method and epsilon: `{needed.name}`")
    # Pooled membership inference over runs with disjoint member sets (when the runs wrote scores).
    from benchmark.report.mia_pool import write_pooled  # numerical code: loaded only here

    pools, mia_paths = write_pooled(sweep_dir, out)
    if pools:
        paths.update(mia_paths)
        notes.append(f"membership inference pooled over disjoint member sets: `{mia_paths['mia_md'].name}` "
                     "(evaluation only)")
    # The declared metrics (memorization, detection and trigger columns included), then any other asked-for ones.
    main = default_columns(summary)
    headline = [*main, *[m for m in utility_metrics if m not in main]]
    paths["csv"] = write_text(out / "summary.csv", to_csv(summary))
    paths["md"] = write_text(out / "summary.md", to_markdown(summary, headline, notes))
    if embed_images is None:  # images outside the report's folder would not travel with it
        embed_images = not sweep_dir.resolve().is_relative_to(out.resolve())
    linker = ImageLinker(out, embed_images)
    gallery = build_gallery(summary.rows, linker, images_per_prompt, max_prompts)
    problems = find_problems(sweep_dir, [job for row in summary.rows for job in row.jobs])
    plots = {name: paths[name] for name in ("utility", "memorization", "n") if name in paths}
    paths["html"] = write_html(out / "report.html",
                               render_html(summary, headline, plots, notes, gallery, problems, out))
    if wandb_group is not None:
        from benchmark.report.wandb_report import log_report

        run_dir = log_report(summary, headline, gallery, wandb_group, out, plots)
        if run_dir is not None:
            paths["wandb"] = run_dir
    return summary, paths


def sweep_group(sweep_dir: Path) -> str:
    """The W&B group the sweep's jobs logged to (``config/group`` of a metrics.json), else the folder's name."""
    import json

    for path in sorted(Path(sweep_dir).glob("*/metrics.json"))[:20]:
        try:
            group = json.loads(path.read_text()).get("config/group")
        except (OSError, ValueError, AttributeError):
            continue
        if group:
            return str(group)
    return Path(sweep_dir).resolve().name


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
    parser.add_argument("--images-per-prompt", type=int, default=2, help="gallery: images of each prompt per row")
    parser.add_argument("--max-prompts", type=int, default=12, help="gallery: prompts shown per row")
    parser.add_argument("--embed-images", action="store_true",
                        help="embed the gallery's images in report.html (default: only when they lie outside --out)")
    parser.add_argument("--wandb", action="store_true",
                        help="also log the table and gallery to a W&B report run (offline without an account)")
    parser.add_argument("--group", default=None,
                        help="W&B group (default: the runs' config group, else the sweep directory's name)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    start = time.perf_counter()
    split = lambda text: [t for t in text.split(",") if t]  # noqa: E731
    group = (args.group or sweep_group(args.sweep_dir)) if args.wandb else None
    try:
        summary, paths = make_report(args.sweep_dir, args.out, split(args.by) if args.by is not None else None,
                                     split(args.replicates), split(args.utility_metrics), split(args.memorization_metrics),
                                     args.alignment_metric, args.images_per_prompt, args.max_prompts,
                                     True if args.embed_images else None, group)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for message in summary.skipped:
        print(f"warning: skipped {message}", file=sys.stderr)
    print(f"{summary.num_jobs} jobs, {len(summary.rows)} rows in {time.perf_counter() - start:.2f} s")
    for path in paths.values():
        print(f"wrote {path}")
    return 0
