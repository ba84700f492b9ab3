"""Reduced random-weight SD-shaped models, built once per test session (a few seconds each)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sd15_reduced(tmp_path_factory) -> Path:
    """SD v1.5's layout at reduced widths (64 px, real CLIP tokenizer), with its CLIP in ``clip/``."""
    from benchmark.models.sd_shaped import build_sd_shaped

    return build_sd_shaped(tmp_path_factory.mktemp("sd15_reduced"), "sd15", reduced=True)


@pytest.fixture(scope="session")
def sd21_reduced(tmp_path_factory) -> Path:
    """SD v2.1's layout (v-prediction, its own text width) at reduced widths, without a CLIP."""
    from benchmark.models.sd_shaped import build_sd_shaped

    return build_sd_shaped(tmp_path_factory.mktemp("sd21_reduced"), "sd21", reduced=True, with_clip=False)
