#!/usr/bin/env python
"""Print the privacy audit's lower bound on epsilon with and without planted bugs, at epsilon 1, 4, 8.

    python scripts/privacy_audit.py [--md results/privacy_audit.md] [--seed 0]
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

from benchmark.privacy.tables import audit_table
from benchmark.utils.io import atomic_write_bytes

COMMAND = "OMP_NUM_THREADS=1 python scripts/privacy_audit.py --md results/privacy_audit.md"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--md", type=Path, help="also write the table, with its command, to this Markdown file")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's divide warnings inside the accountants
        table = audit_table(seed=args.seed)
    print(table)
    if args.md:
        text = (
            "# Privacy audit: lower bounds on epsilon, with and without planted bugs\n\n"
            "Each cell: the 95% lower bound on epsilon (delta 1e-5) of `benchmark.privacy.audit_sampler` "
            "for the mechanism calibrated to the column's epsilon; **caught** where it exceeds it. The "
            "threshold test is chosen on separate selection releases (1M per dataset) and the "
            "Clopper-Pearson bound computed on fresh evaluation releases, sized so that the largest "
            "possible bound (ceiling) is twice the epsilon tested (at least 200k). Releases are the "
            "projections on the canary direction of: DPAgg-TI's noisy mean on worst-case neighbours "
            "(n = 8; replace-one; add/remove with datasets of sizes n and n+1 and public divisor m = n; "
            "m = 4 of 8 without replacement; Poisson at rate 1/2), and one DP-SGD step of a linear model "
            "(torch per-example gradients, Poisson rate 1/2, planted canary with gradient norm 10 C). "
            "Code: `benchmark/privacy/audit_releases.py`.\n\n"
            f"{table}\n\n"
            f"Command: `{COMMAND}` (seed {args.seed}; {time.perf_counter() - start:.0f} s on "
            f"{platform.machine()}, Python {platform.python_version()}).\n"
        )
        atomic_write_bytes(args.md, text.encode())  # a results file is complete or absent


if __name__ == "__main__":
    main()
