"""Markdown tables behind ``results/privacy_*.md`` (printed by thin scripts in ``scripts/``).

* :func:`replace_one_subsampled_table` -- DPAgg-TI's sigma for ``m`` of ``n`` sampled
  without replacement under replace-one: the tight dominating pair (PLD and PRV) against
  the RDP bound used before, and the analytic Gaussian without amplification.
* :func:`audit_table` -- the split audit's lower bound on epsilon, for correct
  mechanisms and for planted bugs, at epsilons 1, 4 and 8.
"""

from __future__ import annotations

import time
from typing import Iterable, Sequence

from .accounting import calibrate_noisy_mean

__all__ = ["SUBSAMPLED_POINTS", "AUDIT_CASES", "replace_one_subsampled_table", "audit_table"]

# (epsilon, delta, n, m): small and large epsilon, rates from 1% to 50%.
SUBSAMPLED_POINTS = [
    (0.01, 1e-5, 1000, 10),
    (0.1, 1e-5, 1000, 100),
    (1.0, 1e-5, 32, 8),
    (4.0, 1e-5, 100, 50),
    (8.0, 1e-6, 1000, 500),
]

# kind -> bugs planted (see benchmark.privacy.audit_releases.BUGS).
AUDIT_CASES = {
    "replace_one": ("none", "noise_div_10", "half_sensitivity"),
    "add_remove": ("none", "noise_div_10", "half_sensitivity", "private_divisor"),
    "replace_one_subsampled": ("none", "noise_div_10", "half_sensitivity"),
    "add_remove_subsampled": ("none", "noise_div_10", "half_sensitivity"),
    "dpsgd": ("none", "no_noise", "clip_value"),
}


def replace_one_subsampled_table(points: Iterable[Sequence] = SUBSAMPLED_POINTS, radius: float = 1.0) -> str:
    """Sigma (release units, ``R = radius``) old (RDP) vs new (tight pair) at each point."""
    rows = [
        "| epsilon | delta | n | m | q | sigma old (rdp) | sigma new (pld) | sigma new (prv) | new/old (pld) "
        "| sigma, no amplification | epsilon achieved (pld) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for epsilon, delta, n, m in points:
        old = calibrate_noisy_mean(epsilon, delta, radius, n, m, "replace_one", "rdp")
        pld = calibrate_noisy_mean(epsilon, delta, radius, n, m, "replace_one", "pld")
        prv = calibrate_noisy_mean(epsilon, delta, radius, n, m, "replace_one", "prv")
        plain = calibrate_noisy_mean(epsilon, delta, radius, n, n, "replace_one").sigma * n / m  # 2R/m, q = 1
        rows.append(
            f"| {epsilon:g} | {delta:g} | {n} | {m} | {m / n:g} | {old.sigma:.5g} ({old.accountant}) "
            f"| {pld.sigma:.5g} | {prv.sigma:.5g} | {pld.sigma / old.sigma:.3f} | {plain:.5g} | {pld.epsilon:.6g} |"
        )
    return "\n".join(rows)


def audit_table(epsilons: Sequence[float] = (1.0, 4.0, 8.0), cases: dict = AUDIT_CASES, seed: int = 0) -> str:
    """Lower bound (95%) of the split audit for every case and bug, one row per case."""
    from .audit_releases import BUGS, audit_mechanism

    header = "| mechanism | planted bug | " + " | ".join(f"epsilon {e:g}: lower bound" for e in epsilons) + " |"
    rows = [header, "|---|---|" + "---|" * len(epsilons)]
    ceilings, releases = {}, {}
    start = time.perf_counter()
    for kind, bugs in cases.items():
        for bug in bugs:
            cells = []
            for epsilon in epsilons:
                result, setup = audit_mechanism(kind, epsilon, bug, seed=seed)
                ceilings[epsilon], releases[epsilon] = result.ceiling, setup["releases"]
                flag = " **caught**" if result.epsilon_lower_bound > epsilon else ""
                cells.append(f"{result.epsilon_lower_bound:.3f}{flag}")
            rows.append(f"| {kind} | {BUGS[bug]} | " + " | ".join(cells) + " |")
    notes = ", ".join(f"epsilon {e:g}: {releases[e]:,} releases per dataset, ceiling {ceilings[e]:.2f}"
                      for e in epsilons)
    rows.append("")
    rows.append(f"Evaluation releases and the largest bound they allow: {notes}. "
                f"({time.perf_counter() - start:.0f} s)")
    return "\n".join(rows)
