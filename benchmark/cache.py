"""``python -m benchmark.cache [list | purge]``: the suite's private caches, and how to remove them.

Private caches hold data derived from private images without DP: DPAgg-TI's per-image
embeddings (``embeddings/``), copies of Hugging Face datasets (``hf/``), the offline
world's rendered populations (``world/``) and the key of the suite's keyed hashes
(``secret.key``; a new key makes every keyed hash, hence every cache entry and resume
record, new). All are owner-only. The built worlds (``worlds/``) are public and stay.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from benchmark.utils.cache import SECRET_FILE, cache_root

PRIVATE = ("embeddings", "hf", "world", SECRET_FILE)


def private_caches() -> list[Path]:
    """The private cache entries that exist now."""
    return [cache_root() / name for name in PRIVATE if (cache_root() / name).exists()]


def purge() -> list[Path]:
    """Delete every private cache entry; returns what was deleted."""
    removed = private_caches()
    for path in removed:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return removed


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("list", "purge"), nargs="?", default="list")
    args = parser.parse_args(argv)
    entries = purge() if args.action == "purge" else private_caches()
    verb = "removed" if args.action == "purge" else "private cache"
    for path in entries:
        print(f"{verb}: {path}")
    if not entries:
        print(f"no private cache under {cache_root()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
