"""Compatibility re-exports for modules outside this change that still import the old names.

Dataset loading moved: types to :mod:`benchmark.data.types`, the cache root to
:mod:`benchmark.utils.cache`, ``load_dataset`` to :mod:`benchmark.datasets` (which
registers every source; it cannot be re-exported here, as data/ must not import
world/). Delete this module once nothing imports it.
"""

from benchmark.data.types import BenchmarkDataset, DatasetError, EvalPrompt, ImageSet  # noqa: F401
from benchmark.utils.cache import cache_root  # noqa: F401
