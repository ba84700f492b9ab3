"""Pick hyperparameters on a PUBLIC proxy sweep: the best setting per (method, epsilon).

    python -m benchmark.report.tuning outputs/sweeps/tune_on_proxy --out results/tune_on_proxy

Reads a sweep (``experiment=tune_on_proxy``), groups its jobs into rows as the report
does (:func:`benchmark.report.sweep.summarize`: the swept config keys become the
row's knobs, seeds are averaged), and for every (method, epsilon) keeps the row with
the highest mean objective (default ``eval/proxy_style_rate``). Ties go to the row
listed first (the report's order). Writes ``tuning.md`` (every row, the chosen ones
marked) and ``tuning.json`` (the chosen knobs), and, per method, the one setting best on
average over the epsilons (:func:`choose_defaults`): the configs' defaults.

Guarantee: it refuses a sweep any of whose jobs adapted on the world's private
population (``dataset.world.population: private_style``) or on more than one dataset:
settings are chosen on public data only, so choosing them spends no privacy budget.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Optional, Sequence

from benchmark.report.render import epsilon_text, value_text, write_text
from benchmark.report.sweep import Row, SweepSummary, summarize

OBJECTIVE = "eval/proxy_style_rate"
PRIVATE_POPULATION = "private_style"


class TuningError(ValueError):
    """The sweep cannot be used to choose hyperparameters (names the offending job)."""


def check_public(summary: SweepSummary) -> str:
    """The one dataset every job adapted on; refuse private or mixed data."""
    datasets = {}
    for row in summary.rows:
        for job in row.jobs:
            if job.metrics.get("config/dataset/world/population") == PRIVATE_POPULATION:
                raise TuningError(f"{job.path}: adapted on the private population ({PRIVATE_POPULATION}); "
                                  "hyperparameters are chosen on public data only (dataset=tiny_proxy_style)")
            datasets.setdefault(str(job.metrics.get("config/dataset/name")), job.path)
    if len(datasets) != 1:
        raise TuningError(f"{summary.sweep_dir}: jobs adapted on several datasets {sorted(datasets)}; tune on one")
    return next(iter(datasets))


def choose(summary: SweepSummary, objective: str = OBJECTIVE) -> dict[tuple[str, float], Row]:
    """Per (method, epsilon), the row with the highest mean ``objective`` (rows without it are ignored)."""
    best: dict[tuple[str, float], Row] = {}
    for row in summary.rows:
        value = row.mean(objective)
        if value is None or math.isnan(value):
            continue
        key = (row.name, row.epsilon)
        if key not in best or value > best[key].mean(objective):
            best[key] = row
    if not best:
        raise TuningError(f"{summary.sweep_dir}: no finished job reports {objective!r}")
    return best


def choose_defaults(summary: SweepSummary, objective: str = OBJECTIVE) -> dict[str, dict]:
    """Per method, the one setting to make its config default: the knobs with the highest
    ``objective`` averaged over every epsilon the method was tuned at (a config holds one
    value per knob; :func:`choose` may pick a different one per epsilon). Only settings
    finished at all of the method's epsilons compete; ties go to the first listed."""
    by_method: dict[str, dict[tuple, dict[float, float]]] = {}
    for row in summary.rows:
        value = row.mean(objective)
        if value is not None and not math.isnan(value):
            setting = tuple(sorted(row.knobs.items()))
            by_method.setdefault(row.name, {}).setdefault(setting, {})[row.epsilon] = value
    defaults = {}
    for method, settings in by_method.items():
        epsilons = set().union(*settings.values())
        complete = {k: v for k, v in settings.items() if set(v) == epsilons}
        if not complete:
            raise TuningError(f"{summary.sweep_dir}: no setting of {method} finished at every epsilon "
                              f"{sorted(epsilons)}; cannot choose one default")
        means = {k: sum(v.values()) / len(epsilons) for k, v in complete.items()}
        best = max(means, key=means.get)  # the first of equal means wins
        defaults[method] = {"knobs": dict(best), objective: means[best], "epsilons": sorted(epsilons)}
    return defaults


def to_markdown(summary: SweepSummary, chosen: dict, defaults: dict, dataset: str, objective: str, command: str) -> str:
    picked = {id(row) for row in chosen.values()}
    knobs = summary.knob_columns
    lines = [f"# Hyperparameters chosen on the public proxy (`dataset={dataset}`)", "",
             f"Command: `{command}`. Objective: `{objective}` (mean over seeds), highest per method and "
             f"epsilon; **bold** rows are chosen. Public data only: no private image was used.", "",
             "| method | epsilon | " + " | ".join(knobs) + f" | {objective} | seeds |",
             "|---|---|" + "---|" * len(knobs) + "---|---|"]
    for row in summary.rows:
        cells = [row.name, epsilon_text(row.epsilon), *(value_text(row.knobs.get(k)) for k in knobs),
                 value_text(row.mean(objective)), str(len(row.jobs))]
        if id(row) in picked:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Config defaults", "",
              "One setting per method (a config holds one value per knob): the highest "
              f"`{objective}` averaged over the epsilons it was tuned at.", "",
              "| method | " + " | ".join(knobs) + f" | mean {objective} | epsilons |",
              "|---|" + "---|" * len(knobs) + "---|---|"]
    for method, entry in defaults.items():
        lines.append(f"| {method} | " + " | ".join(value_text(entry["knobs"].get(k)) for k in knobs)
                     + f" | {value_text(entry[objective])} | {', '.join(epsilon_text(e) for e in entry['epsilons'])} |")
    return "\n".join(lines) + "\n"


def write_tuning(sweep_dir: Path, out: Path, objective: str = OBJECTIVE) -> dict:
    summary = summarize(sweep_dir)
    dataset = check_public(summary)
    chosen = choose(summary, objective)
    defaults = choose_defaults(summary, objective)
    command = f"python -m benchmark.report.tuning {sweep_dir} --out {out}"
    table = {f"{method}@{epsilon_text(eps)}": {"method": method, "epsilon": eps, "knobs": row.knobs,
                                                 objective: row.mean(objective), "seeds": len(row.jobs)}
             for (method, eps), row in sorted(chosen.items(), key=lambda kv: (kv[0][0], kv[0][1]))}
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "tuning.md", to_markdown(summary, chosen, defaults, dataset, objective, command))
    write_text(out / "tuning.json", json.dumps({"dataset": dataset, "objective": objective, "chosen": table,
                                               "defaults": defaults},
                                               indent=1, default=str) + "\n")
    return table


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: <sweep_dir>/tuning")
    p.add_argument("--objective", default=OBJECTIVE)
    args = p.parse_args(argv)
    try:
        table = write_tuning(args.sweep_dir, args.out or args.sweep_dir / "tuning", args.objective)
    except TuningError as err:
        print(f"error: {err}")
        return 2
    for key, entry in table.items():
        print(f"{key}: {entry['knobs']} -> {args.objective} {entry[args.objective]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
