"""The offline world's judge: the attribute classifier saved by the build, and what it checks.

Evaluation reaches the world only through this module (and the world's dataset source):
loading the judge does not import the build (its training code and dependencies).
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from benchmark.world.architectures import AttributeClassifier
from benchmark.world.generator import PRIVATE_STYLE, PROXY_STYLE

__all__ = ["AttributeClassifier", "PRIVATE_STYLE", "PROXY_STYLE", "JUDGE_FOLDER", "load_attribute_classifier", "load_judge"]

# Where a world keeps its judge (world/build.py writes it).
JUDGE_FOLDER = "attribute_classifier"


def load_attribute_classifier(folder: Path) -> AttributeClassifier:
    """The classifier saved in ``folder`` (``model.safetensors``), in eval mode, on the CPU."""
    model = AttributeClassifier()
    model.load_state_dict(load_file(Path(folder) / "model.safetensors"))
    return model.eval()


def load_judge(world_dir: Path) -> AttributeClassifier:
    """The judge of the world built in ``world_dir``."""
    return load_attribute_classifier(Path(world_dir) / JUDGE_FOLDER)
