"""Guidance methods as their YAML builds them (YAML is the only source of their defaults)."""

from __future__ import annotations

from hydra.utils import instantiate

from benchmark.config import compose_config
from benchmark.guidance.base import GuidanceMethod


def guidance_method(name: str, *overrides: str) -> GuidanceMethod:
    """``conf/guidance/<name>.yaml`` with ``guidance.<key>=<value>`` overrides, instantiated."""
    cfg = compose_config([f"guidance={name}", *overrides])
    return instantiate(cfg.guidance, _convert_="all")
