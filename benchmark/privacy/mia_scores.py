"""The per-candidate membership-inference scores of a run: ``privacy_eval/mia_scores.jsonl``.

Line 1 is a header (``"kind": "header"``): who made the scores (method, epsilon, delta,
seeds, attack settings) and a warning that they are computed from private data without
DP; every other line is one candidate: ``{"member": bool, "index": i, "<attack>": score}``
(``index`` into the adaptation or held-out split; no image, caption or file name).

The file is evaluation-only: it is written into the run directory (owner-only folder)
and nowhere else, never logged to W&B and never committed under ``results/``. Pooling
several runs' files (:mod:`benchmark.report.mia_pool`) recomputes the figures on more
candidates than one run has.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from benchmark.utils.io import atomic_write_bytes, json_safe

SCORES_FILE = Path("privacy_eval") / "mia_scores.jsonl"
WARNING = ("EVALUATION ONLY: per-image membership scores computed from the private training images and held-out "
           "images WITHOUT differential privacy. Not covered by the release's (epsilon, delta); do not publish, "
           "upload or log them.")


def write_scores(run_dir: Path, header: dict, members: dict[str, Sequence[float]],
                 nonmembers: dict[str, Sequence[float]]) -> Path:
    """Write the scores file atomically (one attack per key of ``members``/``nonmembers``)."""
    attacks = sorted(members)
    if sorted(nonmembers) != attacks:
        raise ValueError(f"member attacks {attacks} differ from non-member attacks {sorted(nonmembers)}")
    lines = [{"kind": "header", "evaluation_only": True, "publish": False, "warning": WARNING,
              "attacks": attacks, **header}]
    for is_member, table in ((True, members), (False, nonmembers)):
        count = {len(v) for v in table.values()}
        if len(count) != 1:
            raise ValueError(f"attacks scored different numbers of candidates: {count}")
        for i in range(count.pop()):
            lines.append({"member": is_member, "index": i, **{a: float(table[a][i]) for a in attacks}})
    path = Path(run_dir) / SCORES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)  # like the embedding cache: private material stays owner-only
    atomic_write_bytes(path, "".join(json.dumps(json_safe(line)) + "\n" for line in lines).encode())
    return path


def read_scores(path: Path) -> tuple[dict, dict[str, list[float]], dict[str, list[float]]]:
    """``(header, member scores, non-member scores)`` by attack; a malformed file is a ValueError naming it."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines or lines[0].get("kind") != "header":
        raise ValueError(f"{path}: not a membership-inference scores file (no header line)")
    header, attacks = lines[0], lines[0].get("attacks") or []
    members: dict[str, list[float]] = {a: [] for a in attacks}
    nonmembers: dict[str, list[float]] = {a: [] for a in attacks}
    for line in lines[1:]:
        table = members if line.get("member") else nonmembers
        for a in attacks:
            if a not in line:
                raise ValueError(f"{path}: a candidate has no {a!r} score")
            table[a].append(float(line[a]))
    return header, members, nonmembers
