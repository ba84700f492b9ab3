"""Load any configured dataset with every source the suite ships registered.

Why a module here, above data/ and world/: data/ must not import world/ (the world's
source is built on data's image-folder loader), so the world registers its source
itself, on import. This module imports it, so whoever loads datasets through
``benchmark.datasets.load_dataset`` (the run, scripts, tests) sees the full registry;
a new source package is one more import line here.
"""

from __future__ import annotations

import benchmark.world.source  # noqa: F401  (registers dataset.source=world)
from benchmark.data.sources import check_source, load_dataset, register_source, source_names

__all__ = ["check_source", "load_dataset", "register_source", "source_names"]
