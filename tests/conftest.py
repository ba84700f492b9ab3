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

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def compose(overrides: list[str]):
    """Compose the run config the way ``python -m benchmark`` does (incl. hydra.* nodes)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


SMOKE = ["experiment=smoke", "logger=none"]


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
