"""Pooled membership-inference study: ``python -m benchmark.report.mia_pool <sweep dir>``.

One run's figures are loose: with 32 members, a TPR at 1% FPR has a Clopper-Pearson
interval about 0.3 wide. This pools the per-candidate scores (``privacy_eval/mia_scores.jsonl``)
of the runs of one (method, guidance, target epsilon) that were trained on **disjoint
member sets** (different ``dataset.world.seed``: the world draws fresh images for each),
and recomputes every figure on the concatenated scores with the same code as one run
(:func:`benchmark.privacy.mia_stats.membership_figures`): a single threshold across
runs, so the pooled attack is the "same attack against any of these models" of
LiRA-style studies. Runs sharing a world seed share members; only the first (by path)
counts, with a warning. Every attack of :data:`ATTACKS` (``loss``, ``loss_calibrated``,
``similarity``) that all of a pool's files score is pooled; a file written before an
attack existed leaves that attack out of its pool (empty cells in the table).

The DP bound of a pool is that of its weakest run (largest epsilon, largest delta): each
run obeys ``TPR_i <= e^eps FPR_i + delta``, and with equal candidate counts per run the
pooled rates are the runs' averages, which obey it too.

Writes ``mia_pooled.md`` and ``mia_pooled.json`` (evaluation only: computed from private
images without DP; aggregate figures, no per-image scores). Importing this module loads no
numerical code (the report imports it).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from benchmark.privacy.mia_scores import SCORES_FILE, read_scores
from benchmark.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)
ATTACKS = ("loss", "loss_calibrated", "similarity")  # table columns; a file without an attack leaves its cells empty


@dataclass
class Pool:
    method: str
    guidance: str
    target_epsilon: float
    runs: list[Path] = field(default_factory=list)  # run directories
    world_seeds: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    exceeded: list[str] = field(default_factory=list)


def _float(value) -> float:
    return float(value) if value is not None else math.inf


def find_score_files(sweep_dir: Path) -> list[Path]:
    """Every finished run's scores file below ``sweep_dir`` (a run without metrics.json did not finish)."""
    found = []
    for path in sorted(Path(sweep_dir).rglob(SCORES_FILE.name)):
        run_dir = path.parent.parent
        if path.parent.name != SCORES_FILE.parent.name or "wandb" in path.parts:
            continue
        if not (run_dir / "metrics.json").is_file():
            log.warning("skipping %s: its run has no metrics.json (unfinished)", path)
            continue
        found.append(path)
    return found


def pooled_figures(score_sets: Sequence[tuple[dict, dict, dict]]) -> tuple[dict, list[str]]:
    """The figures of the concatenated scores of ``(header, members, nonmembers)`` triples."""
    from benchmark.privacy.mia_stats import membership_figures  # numerical code: loaded on use

    attacks = sorted(set.intersection(*(set(m) for _, m, _ in score_sets)))
    members = {a: [s for _, m, _ in score_sets for s in m[a]] for a in attacks}
    nonmembers = {a: [s for _, _, n in score_sets for s in n[a]] for a in attacks}
    epsilon = max(_float(h.get("epsilon")) for h, _, _ in score_sets)
    delta = max(float(h.get("delta") or 0.0) for h, _, _ in score_sets)
    return membership_figures(members, nonmembers, epsilon, delta)


def pool_sweep(sweep_dir: Path) -> list[Pool]:
    """Group the sweep's score files by (method, guidance, target epsilon) and pool each group."""
    groups: dict[tuple, tuple[Pool, list]] = {}
    for path in find_score_files(sweep_dir):
        try:
            header, members, nonmembers = read_scores(path)
        except (OSError, ValueError) as err:
            log.warning("skipping %s: %s", path, err)
            continue
        key = (str(header.get("method")), str(header.get("guidance")), _float(header.get("target_epsilon")))
        pool, sets = groups.setdefault(key, (Pool(*key), []))
        seed = header.get("dataset_world_seed")
        if seed in pool.world_seeds:
            log.warning("skipping %s: dataset.world.seed=%s already pooled for %s (members must be disjoint)",
                        path, seed, key)
            continue
        pool.runs.append(path.parent.parent)
        pool.world_seeds.append(seed)
        sets.append((header, members, nonmembers))
    pools = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2])):
        pool, sets = groups[key]
        pool.figures, pool.exceeded = pooled_figures(sets)
        pools.append(pool)
    return pools


def _interval(fig: dict, key: str) -> str:
    if key not in fig:
        return ""
    return f"{fig[key]:.3f} [{fig[key + '_low']:.3f}, {fig[key + '_high']:.3f}]"


def to_markdown(pools: Sequence[Pool], sweep_dir: Path) -> str:
    eps = lambda e: "inf" if math.isinf(e) else f"{e:g}"  # noqa: E731
    out = [f"# Pooled membership inference: `{sweep_dir}`", "",
           "EVALUATION ONLY: computed from the private training images and held-out images without DP; not "
           "covered by any release's (epsilon, delta).", "",
           "Each row pools runs trained on disjoint member sets (distinct `dataset.world.seed`). AUC: DeLong 95% "
           "interval; TPR at FPR: threshold with empirical FPR <= target, Clopper-Pearson 95% interval (width in "
           "parentheses); DP bound: e^eps FPR + delta at the measured FPR.", ""]
    head = ["method", "guidance", "epsilon", "world seeds", "members", "non-members"]
    for a in ATTACKS:
        head += [f"{a} AUC", f"{a} TPR@1%FPR (width)", f"{a} TPR@0.1%FPR", f"{a} DP bound @1%"]
    head.append("exceeds DP bound")
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in pools:
        f = p.figures
        cells = [p.method, p.guidance, eps(p.target_epsilon), ",".join(str(s) for s in p.world_seeds),
                 str(f.get("privacy/mia_num_members", "")), str(f.get("privacy/mia_num_nonmembers", ""))]
        for a in ATTACKS:
            k = f"privacy/mia_{a}_tpr_at_fpr_1pct"
            width = f" ({f[k + '_high'] - f[k + '_low']:.3f})" if k in f else ""
            bound = f.get(f"privacy/mia_{a}_dp_bound_at_fpr_1pct")
            cells += [_interval(f, f"privacy/mia_{a}_auc"), _interval(f, k) + width,
                      _interval(f, f"privacy/mia_{a}_tpr_at_fpr_0p1pct"), "" if bound is None else f"{bound:.4g}"]
        flag = f.get("privacy/mia_exceeds_dp_bound")
        cells.append("n/a" if flag is None else ("YES: " + ", ".join(p.exceeded) if flag else "no"))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_pooled(sweep_dir: Path, out: Optional[Path] = None) -> tuple[list[Pool], dict[str, Path]]:
    """Pool the sweep and write ``mia_pooled.md`` / ``.json`` into ``out`` (default: the sweep directory)."""
    sweep_dir = Path(sweep_dir)
    out = Path(out) if out else sweep_dir
    pools = pool_sweep(sweep_dir)
    if not pools:
        return pools, {}
    for p in pools:
        if p.exceeded:
            log.warning("pooled membership inference: %s (%s, epsilon %s) exceeds the DP bound with the %s attack",
                        p.method, p.guidance, p.target_epsilon, ", ".join(p.exceeded))
    md, js = out / "mia_pooled.md", out / "mia_pooled.json"
    atomic_write_bytes(md, to_markdown(pools, sweep_dir).encode())
    atomic_write_json(js, {"evaluation_only": True, "pools": [
        {"method": p.method, "guidance": p.guidance, "target_epsilon": p.target_epsilon,
         "world_seeds": p.world_seeds, "runs": [str(r) for r in p.runs], "exceeds_dp_bound_attacks": p.exceeded,
         "figures": p.figures} for p in pools]})
    return pools, {"mia_md": md, "mia_json": js}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.report.mia_pool", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the sweep directory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not args.sweep_dir.is_dir():
        print(f"error: sweep directory {args.sweep_dir} does not exist")
        return 2
    pools, paths = write_pooled(args.sweep_dir, args.out)
    if not pools:
        print(f"no membership-inference scores ({SCORES_FILE}) under {args.sweep_dir}")
        return 1
    print(json.dumps({f"{p.method}/{p.guidance}/eps{p.target_epsilon:g}": {
        k.removeprefix("privacy/mia_"): round(v, 4) for k, v in p.figures.items()
        if k.endswith(("_auc", "tpr_at_fpr_1pct", "tpr_at_fpr_1pct_low", "tpr_at_fpr_1pct_high", "num_members"))}
        for p in pools}, indent=1))
    for path in paths.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
