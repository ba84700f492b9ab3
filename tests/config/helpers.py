"""Shared helpers of the config tests (imported, not conftest fixtures)."""

from functools import lru_cache

from omegaconf import DictConfig

from benchmark.config import compose_config


@lru_cache(maxsize=None)
def composed(*overrides: str) -> DictConfig:
    """``compose_config(overrides)``, composed once per session: callers must not modify it."""
    return compose_config(list(overrides))
