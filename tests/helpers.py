"""Helpers every test module may import (fixtures stay in conftest.py; nothing imports conftest)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

# The smallest end-to-end job: micro world, 8 adaptation images, 8 generations, no logger.
SMOKE = ["experiment=smoke", "logger=none"]


def compose(overrides: list[str]) -> DictConfig:
    """The run config of ``python -m benchmark <overrides>`` (without ``hydra.*``)."""
    from benchmark.config import compose_config

    return compose_config(overrides)
