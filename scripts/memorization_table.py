#!/usr/bin/env python
"""Collect the metrics.json files of a memorization sweep into a Markdown table and a JSON file.

    python scripts/memorization_table.py outputs/sweeps/<date>/<time> --md results/x.md --json results/x.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = [
    ("memorized_fraction_copied", "mem. copied"), ("memorized_similarity_mean", "mem. sim"),
    ("memorized_clip_score", "mem. CLIP"), ("control_fraction_copied", "ctrl copied"),
    ("control_clip_score", "ctrl CLIP"), ("detection_auc", "det. AUC"),
    ("memorized_trigger_fraction", "mem. trig"), ("control_trigger_fraction", "ctrl trig"),
]
KNOBS = ("lambda_ss", "lambda_pr", "tau", "target_loss", "k", "scale", "semantic_search", "prompt_reanchoring")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sweeps", type=Path, nargs="+")
    p.add_argument("--md", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rows = []
    for sweep in args.sweeps:
        for f in sorted(sweep.glob("*/metrics.json"), key=lambda f: int(f.parent.name.split("_")[0])):
            m = json.loads(f.read_text())
            knobs = {k: m[f"config/method/{k}"] for k in KNOBS if f"config/method/{k}" in m}
            knobs.update({f"resolved {k}": round(m[f"adapt/{k}"], 3) for k in ("lambda_ss", "lambda_pr", "tau",
                                                                                 "target_loss") if f"adapt/{k}" in m})
            rows.append({"method": m["method"], "knobs": knobs, "sample_s": m.get("time/sample_s"),
                         "num_images": m.get("eval/num_images"),
                         **{c: m.get(f"eval/{c}") for c, _ in COLUMNS}})
    fmt = lambda v: "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| method | knobs | " + " | ".join(h for _, h in COLUMNS) + " | sample s |",
             "|---|---|" + "---|" * len(COLUMNS) + "---|"]
    for r in rows:
        knobs = ", ".join(f"{k}={v}" for k, v in r["knobs"].items())
        lines.append(f"| {r['method']} | {knobs} | " + " | ".join(fmt(r[c]) for c, _ in COLUMNS)
                     + f" | {fmt(r['sample_s'])} |")
    table = "\n".join(lines)
    print(table)
    if args.md:
        args.md.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
