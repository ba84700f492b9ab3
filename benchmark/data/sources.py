"""The one registry of dataset sources: ``dataset.source`` name -> loader.

A loader takes ``(DatasetConfig, resolution)`` and returns :class:`DatasetParts`;
:func:`load_dataset` looks the source up, checks the result and computes the content
hash (the only place it is computed). The data package registers its own sources below;
the offline world registers ``world`` from :mod:`benchmark.world.source`, because data/
must not import world/ (world builds on data, not the reverse). Load datasets through
:mod:`benchmark.datasets`, which imports both, so that every shipped source is present.
"""

from __future__ import annotations

from typing import Callable

from benchmark.config import ConfigError, DatasetConfig
from benchmark.data.hf import load_hf_source
from benchmark.data.imagefolder import load_imagefolder_source
from benchmark.data.memorization import load_memorization_source
from benchmark.data.types import BenchmarkDataset, DatasetError, DatasetParts, content_hash

Loader = Callable[[DatasetConfig, int], DatasetParts]

_SOURCES: dict[str, Loader] = {}


def register_source(name: str, loader: Loader) -> Loader:
    """Make ``dataset.source: <name>`` load with ``loader``; a name is registered once."""
    if name in _SOURCES and _SOURCES[name] is not loader:
        raise ValueError(f"dataset source {name!r} is already registered ({_SOURCES[name].__module__})")
    _SOURCES[name] = loader
    return loader


def source_names() -> list[str]:
    """The registered source names, sorted."""
    return sorted(_SOURCES)


def get_source(name: str) -> Loader:
    """The loader of ``name``; an unknown name is a ConfigError listing the registered ones."""
    try:
        return _SOURCES[name]
    except KeyError:
        hint = "" if "world" in _SOURCES else " (the offline world's source registers when benchmark.datasets is imported)"
        raise ConfigError(f"dataset.source={name!r} is not a dataset source; choose one of "
                          f"{', '.join(source_names())}{hint}") from None


def check_source(name: str) -> None:
    """Raise the ConfigError of :func:`get_source` for an unknown name (a start-up check)."""
    get_source(name)


def load_dataset(cfg: DatasetConfig, resolution: int) -> BenchmarkDataset:
    """Load the adaptation and held-out splits and the evaluation prompts of a dataset config."""
    adapt, heldout, prompts = get_source(cfg.source)(cfg, resolution)
    # A prompt-only memorization set (Wen et al.'s file without gt_images/) has no images:
    # it serves detection and guidance (benchmark.preflight refuses it for a learning method).
    if len(adapt) < 1 and not prompts:
        raise DatasetError(f"dataset '{cfg.name}': the adaptation split is empty")
    return BenchmarkDataset(cfg.name, cfg, adapt, heldout, prompts, content_hash(adapt, heldout))


register_source("imagefolder", load_imagefolder_source)
register_source("hf", load_hf_source)
register_source("memorization", load_memorization_source)
