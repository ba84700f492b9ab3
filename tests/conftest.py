"""Shared fixtures: offline environment, Hydra compose, the micro world."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before anything imports huggingface_hub: an accidental hub call fails fast.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.helpers import SMOKE, compose  # noqa: E402  (after the environment is set)


@pytest.fixture(scope="session")
def micro_world() -> Path:
    """The micro world, built once into the cache (the same code as the shipped world)."""
    from benchmark.models.backbone import resolve_pretrained

    return Path(resolve_pretrained("builtin:micro"))


@pytest.fixture()
def run_job(tmp_path, micro_world):
    """Run one job in-process with the given overrides; return (metrics, output_dir)."""
    from benchmark.run import run

    def _run(overrides: list[str], out: Path | None = None):
        cfg = compose(SMOKE + overrides)
        out = out or tmp_path / "run"
        return run(cfg, out), out

    return _run
