"""What a rerun needs to know: config hash, package versions, git commit."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "diffusers", "transformers", "lightning", "hydra-core", "omegaconf", "opacus",
            "wandb", "torchmetrics", "clean-fid", "peft", "numpy")


def config_hash(resolved: dict) -> str:
    """Hash of the resolved config (sorted JSON): equal configs, equal hash."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def git_commit() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
