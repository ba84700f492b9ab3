"""Where the suite keeps what it builds or trains once: worlds, embeddings, dataset copies."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$BENCHMARK_CACHE``, else ``~/.cache/dp-diffusion-bench``."""
    return Path(os.environ.get("BENCHMARK_CACHE", Path.home() / ".cache" / "dp-diffusion-bench"))
