"""``report.html``: one self-contained page per sweep (stdlib HTML, inline CSS and JS).

Sections: the headline table (method x guidance x epsilon x knobs, mean ± std over seeds,
best per column marked by the metric's declared direction, sortable), the
privacy-utility plots, the gallery (:mod:`benchmark.report.gallery`), every run with
links to its folder, config and ``metrics.json``, and the jobs without a result.

What is DP release and what is evaluation-only is marked on every metric column:
``privacy/*`` is the release's accounting (what the published artifact spent; the
generations are post-processing of it); ``eval/*`` is evaluation-only, and the keys that
compare with the private adaptation set or its population (``eval/adapt_set_*``, FID and
KID against the private held-out images) are marked as computed with private data: they
are not covered by the release's (epsilon, delta) and must not be published with it.
"""

from __future__ import annotations

import math
import os
from html import escape
from pathlib import Path
from typing import Optional, Sequence

from benchmark.metrics.catalog import declared_keys
from benchmark.report.gallery import Gallery
from benchmark.report.html_assets import CSS, JS
from benchmark.report.render import ARROWS, epsilon_text, value_text
from benchmark.report.runs import Problem, config_file
from benchmark.report.sweep import SweepSummary
from benchmark.utils.io import atomic_write_bytes

PRIVATE_DATA_PREFIXES = ("eval/adapt_set_", "eval/fid", "eval/kid")
ARTIFACTS = ("learned_embeds.safetensors", "lora_weights.safetensors")  # what a run releases
VISIBILITY = {
    "release": ("DP release", "the released artifact's privacy accounting: covered by its (ε, δ)"),
    "evalonly": ("eval only", "computed by the benchmark for evaluation; not part of the release"),
    "privatedata": ("eval · private data", "evaluation-only, computed with access to the private adaptation "
                    "set or its population: not covered by the release's (ε, δ); do not publish with it"),
}


def visibility(metric: str) -> Optional[str]:
    """The class of a metric column: release, privatedata, evalonly, or None (bookkeeping).

    A declared key that reads private data is ``privatedata`` whatever its prefix: the
    membership-inference figures are named ``privacy/mia_*`` but are not the release's.
    """
    key = declared_keys().get(metric)
    if key is not None and key.reads_private_data:
        return "privatedata"
    if metric.startswith("privacy/"):
        return "release"
    if metric.startswith(PRIVATE_DATA_PREFIXES):
        return "privatedata"
    if metric.startswith("eval/"):
        return "evalonly"
    return None


def _rel(path: Path, out: Path) -> str:
    return escape(Path(os.path.relpath(path, out)).as_posix(), quote=True)


def _number(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.4g}"


def best_values(summary: SweepSummary, metric: str) -> set[float]:
    """The best row mean of ``metric`` by its declared direction (empty when it declares none)."""
    key = declared_keys().get(metric)
    means = [r.mean(metric) for r in summary.rows if metric in r.stats and math.isfinite(r.mean(metric))]
    if key is None or key.higher_is_better is None or len(means) < 2:
        return set()
    return {max(means) if key.higher_is_better else min(means)}


def _metric_th(metric: str) -> str:
    key = declared_keys().get(metric)
    vis = visibility(metric)
    title = (key.description if key else metric) + (f" — {VISIBILITY[vis][1]}" if vis else "")
    arrow = ARROWS[key.higher_is_better if key else None].strip()
    unit = f' <span class="unit">[{escape(key.unit)}]</span>' if key and key.unit else ""
    badge = f' <span class="badge {vis}">{VISIBILITY[vis][0]}</span>' if vis else ""
    cls = f' class="{vis}"' if vis else ""
    return (f'<th{cls} data-metric="{escape(metric)}" title="{escape(title)}">{escape(metric)} {arrow}'
            f'{unit}{badge}</th>')


def _table(summary: SweepSummary, metrics: Sequence[str]) -> list[str]:
    knobs = summary.knob_columns
    head = [*(f"<th>{h}</th>" for h in ("method", "guidance", "ε target")),
            *(f"<th>{escape(k)}</th>" for k in knobs), "<th>seeds</th>", *map(_metric_th, metrics), "<th>runs</th>"]
    best = {m: best_values(summary, m) for m in metrics}
    lines = ['<div class="scroll"><table class="metrics" id="headline">', "<thead><tr>", *head, "</tr></thead><tbody>"]
    for i, row in enumerate(summary.rows):
        eps = "1e308" if math.isinf(row.epsilon) else repr(row.epsilon)  # inf sorts after every budget
        cells = [f'<td data-v="{escape(row.method)}">{escape(row.method)}</td>',
                 f'<td data-v="{escape(row.guidance)}">{escape(row.guidance)}</td>',
                 f'<td class="num" data-v="{eps}">{epsilon_text(row.epsilon)}</td>']
        for k in knobs:
            text = value_text(row.knobs.get(k))
            cells.append(f'<td data-v="{escape(text)}">{escape(text)}</td>')
        cells.append(f'<td class="num" data-v="{len(row.jobs)}">{len(row.jobs)}</td>')
        for m in metrics:
            if m not in row.stats:
                cells.append('<td class="num" data-v=""></td>')
                continue
            mean, std, _ = row.stats[m]
            # No "± 0" where every seed agrees (epsilon, delta): the seeds column says how many there are.
            text = _number(mean) if math.isnan(std) or std == 0 else f"{_number(mean)} ± {std:.2g}"
            cls = "num best" if mean in best[m] else "num"
            value = "" if math.isnan(mean) else ("1e308" if mean == math.inf else repr(mean))
            cells.append(f'<td class="{cls}" data-v="{value}">{text}</td>')
        cells.append(f'<td class="links"><a href="#runs-{i}">runs</a> · <a href="#gallery-{i}">images</a></td>')
        lines.append(f'<tr id="row-{i}">' + "".join(cells) + "</tr>")
    lines.append("</tbody></table></div>")
    return lines


def _legend() -> list[str]:
    items = "".join(f'<li><span class="badge {c}">{escape(t)}</span> {escape(d)}</li>'
                    for c, (t, d) in VISIBILITY.items())
    return ["<p>Cells: mean ± sample std over seeds (one seed: the value). ↑ higher is better, ↓ lower is "
            "better (the metric's declaration); ★ the best row of the column. Click a header to sort.</p>",
            f"<ul>{items}</ul>",
            '<p>The images below are generations of the released artifact: post-processing of the '
            '<span class="badge release">DP release</span>, covered by its (ε, δ).</p>']


def _gallery(gallery: Gallery) -> list[str]:
    if not gallery.columns:
        return ["<p>No images: no finished run has <code>images/index.jsonl</code>.</p>"]
    head = ['<th class="label">row (run shown)</th>'] + [
        f'<th class="prompt" title="{escape(text)}">{escape(text[:40])}<br>p{p} · s{escape(str(s))}</th>'
        for p, s, text in gallery.columns]
    lines = ['<div class="scroll"><table class="gallery"><thead><tr>', *head, "</tr></thead><tbody>"]
    for i, entry in enumerate(gallery.rows):
        where = f"seed {escape(str(entry.job.seed))}" if entry.job else "no images"
        label = (f'<td class="label" id="gallery-{i}"><a href="#row-{i}">{escape(entry.row.label)}</a><br>'
                 f'ε {epsilon_text(entry.row.epsilon)} · {where}</td>')
        cells = []
        for p, s, _ in gallery.columns:
            cell = entry.cells.get((p, s))
            cells.append(f'<td><img src="{escape(cell.src, quote=True)}" title="{escape(cell.title, quote=True)}" '
                         f'alt="prompt {p}, seed {escape(str(s))}"></td>' if cell else "<td>–</td>")
        lines.append("<tr>" + label + "".join(cells) + "</tr>")
    lines.append("</tbody></table></div>")
    return lines


def _runs(summary: SweepSummary, out: Path) -> list[str]:
    lines = []
    for i, row in enumerate(summary.rows):
        lines.append(f'<details id="runs-{i}"><summary>{escape(row.label)}, ε {epsilon_text(row.epsilon)}: '
                     f'{len(row.jobs)} run(s)</summary><ul>')
        for job in row.jobs:
            links = [f'<a href="{_rel(job.run_dir, out)}/">folder</a>', f'<a href="{_rel(job.path, out)}">metrics.json</a>']
            config = config_file(job.run_dir)
            if config is not None:
                links.insert(1, f'<a href="{_rel(config, out)}">config</a>')
            for name in ("samples_grid.png", *ARTIFACTS):
                if (job.run_dir / name).is_file():
                    links.append(f'<a href="{_rel(job.run_dir / name, out)}">{name}</a>')
            if any((job.run_dir / name).is_file() for name in ARTIFACTS):
                dp = job.metrics.get("privacy/private") is True
                links.append('<span class="badge release">DP release</span>' if dp else
                             '<span class="badge privatedata">not DP: private</span>')
            lines.append(f"<li>seed {escape(str(job.seed))}: <code>{escape(job.run_dir.name)}</code> "
                         + " · ".join(links) + "</li>")
        lines.append("</ul></details>")
    return lines


def _problems(problems: Sequence[Problem], warnings: Sequence[str], out: Path) -> list[str]:
    if not problems and not warnings:
        return ["<p>None: every job directory has a result.</p>"]
    lines = []
    if problems:
        lines += ['<table id="problems"><thead><tr><th>status</th><th>job</th><th>reason</th></tr></thead><tbody>']
        for p in problems:
            lines.append(f'<tr class="status-{p.status}"><td>{p.status}</td>'
                         f'<td><a href="{_rel(p.run_dir, out)}/">{escape(p.run_dir.name)}</a></td>'
                         f"<td>{escape(p.reason)}</td></tr>")
        lines.append("</tbody></table>")
    if warnings:
        lines += ["<p>Warnings:</p><ul>", *(f"<li><code>{escape(w)}</code></li>" for w in warnings), "</ul>"]
    return lines


def render_html(summary: SweepSummary, headline: Sequence[str], plots: dict[str, Path], notes: Sequence[str],
                gallery: Gallery, problems: Sequence[Problem], out: Path) -> str:
    """The page's text. ``plots``: name -> PNG path (linked relatively); ``notes``: why a plot is missing."""
    title = f"Sweep report: {summary.sweep_dir.name}"
    body = [f"<h1>{escape(title)}</h1>",
            f"<p><code>{escape(str(summary.sweep_dir))}</code>: {summary.num_jobs} finished jobs in "
            f"{len(summary.rows)} rows (method x guidance x ε{' x ' + ' x '.join(map(escape, summary.knob_columns)) if summary.knob_columns else ''}); "
            f"{len(problems)} job(s) without a result (<a href=\"#problems-section\">listed below</a>).</p>"]
    if summary.rows and all(j.metrics.get("git_commit") == "synthetic" for r in summary.rows for j in r.jobs):
        body.append('<p class="badge privatedata">Synthetic data (benchmark.report.synthetic): '
                    "an example of the layout, not results.</p>")
    metrics = [m for m in headline if m in summary.metrics]
    body += ["<h2>Headline table</h2>", *_legend()]
    body += _table(summary, metrics) if summary.rows else ["<p><b>No finished runs</b> (no readable metrics.json).</p>"]
    body.append("<h2>Privacy-utility plots</h2>")
    body += [f'<figure><img src="{_rel(p, out)}" alt="{escape(name)}"><figcaption>{escape(p.name)}</figcaption></figure>'
             for name, p in plots.items()]
    body += [f"<p>{escape(n)}</p>" for n in notes if "skipped" in n]
    body += ["<h2>Gallery</h2>", "<p>Per row, the first images of each prompt of one run; a column is one "
             "prompt and image seed, the same across rows. Hover for the sampled text.</p>", *_gallery(gallery)]
    body += ["<h2>Runs</h2>", *_runs(summary, out)]
    body += ['<h2 id="problems-section">Skipped and failed jobs</h2>',
             *_problems(problems, [*summary.skipped, *gallery.warnings], out)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{JS}</script>\n</body></html>\n")


def write_html(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode())
    return path
