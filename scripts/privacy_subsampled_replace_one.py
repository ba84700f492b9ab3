#!/usr/bin/env python
"""Print DPAgg-TI's sigma for replace-one subsampling: tight dominating pair vs the old RDP bound.

    python scripts/privacy_subsampled_replace_one.py [--md results/privacy_subsampled_replace_one.md]
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

from benchmark.privacy.tables import replace_one_subsampled_table
from benchmark.utils.io import atomic_write_bytes

COMMAND = "python scripts/privacy_subsampled_replace_one.py --md results/privacy_subsampled_replace_one.md"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--md", type=Path, help="also write the table, with its command, to this Markdown file")
    args = p.parse_args()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's divide warnings inside the accountants
        table = replace_one_subsampled_table()
    print(table)
    if args.md:
        from importlib.metadata import version

        text = (
            "# Replace-one subsampling (m of n without replacement): sigma, tight pair vs RDP\n\n"
            "DPAgg-TI's noise std (R = 1, so sigma = z * 2/m) for the release of a mean of m of n "
            "clipped embeddings drawn without replacement, replace-one neighbours. *Old*: "
            "dp_accounting's RDP bound for sampling without replacement, or the analytic Gaussian "
            "without amplification where that bound is worse (the name in brackets). *New*: the "
            "tightly dominating pair ((1-q) N(0, z^2) + q N(1, z^2), N(0, z^2)), z = sigma / (2R/m), "
            "q = m/n (Zhu, Dong & Wang 2022), through dp_accounting's PLD and Opacus' PRV "
            "accountants (errors kept within 1% of epsilon).\n\n"
            f"{table}\n\n"
            f"Command: `{COMMAND}` ({time.perf_counter() - start:.0f} s on {platform.machine()}, "
            f"Python {platform.python_version()}, opacus {version('opacus')}, dp-accounting "
            f"{version('dp-accounting')}).\n"
        )
        atomic_write_bytes(args.md, text.encode())  # a results file is complete or absent


if __name__ == "__main__":
    main()
