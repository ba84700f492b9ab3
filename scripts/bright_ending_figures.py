#!/usr/bin/env python
"""Tabulate Bright Ending runs (``metrics.json`` of each run directory) and the timing JSON as markdown.

    python scripts/bright_ending_figures.py RUN_DIR... [--timing timing.json] [--out results/bright_ending/figures.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DETECTION = ("eval/detection_auc", "eval/detection_masked_auc", "eval/detection_magnitude_memorized",
             "eval/detection_magnitude_control", "eval/detection_masked_magnitude_memorized",
             "eval/detection_masked_magnitude_control")
MITIGATION = ("eval/memorized_fraction_copied", "eval/memorized_similarity_mean", "eval/control_fraction_copied",
              # local memorization (dataset.copy_region): copying of the motif's region alone
              "eval/memorized_region_fraction_copied", "eval/memorized_region_similarity_mean",
              "eval/control_region_fraction_copied",
              "eval/memorized_clip_score", "eval/control_clip_score", "eval/memorized_trigger_fraction",
              "eval/control_trigger_fraction")


def _cell(value) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def table(runs: list[dict], keys: tuple[str, ...]) -> list[str]:
    lines = ["| guidance | " + " | ".join(k.removeprefix("eval/") for k in keys) + " |",
             "|---|" + "---|" * len(keys)]
    for m in runs:
        lines.append(f"| {m['guidance']} | " + " | ".join(_cell(m.get(k)) for k in keys) + " |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--timing", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    runs = [json.loads((d / "metrics.json").read_text()) for d in args.runs]
    lines = ["## Detection (first-step magnitude, global vs BE-masked)", "", *table(runs, DETECTION), "",
             "## Mitigation", "", *table(runs, MITIGATION), "", "## Thresholds", ""]
    for m in runs:
        th = {k.removeprefix("guidance/"): round(v, 4) for k, v in m.items()
              if k.startswith("guidance/") and isinstance(v, float)}
        lines.append(f"- {m['guidance']}: {th or 'none'}; sample {m.get('time/sample_s')} s, "
                     f"calibrate {m.get('time/calibrate_s')} s")
    if args.timing:
        t = json.loads(args.timing.read_text())
        lines += ["", "## Sampling time, prss_be vs prss (best of interleaved repeats)", "",
                  "| prompts | images | none s | prss s | prss_be s | prss_be / prss | prss_be / none | "
                  "prss triggered | prss_be triggered |", "|---|---|---|---|---|---|---|---|---|"]
        for name, row in t.items():
            if isinstance(row, dict) and "ratio_be_to_prss" in row:
                lines.append(f"| {name} | {row['images']} | {row['none_s']} | {row['prss_s']} | {row['prss_be_s']} | "
                             f"{row['ratio_be_to_prss']}x | {row['ratio_be_to_none']}x | "
                             f"{row['prss_trigger_fraction']:.0%} | {row['prss_be_trigger_fraction']:.0%} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
