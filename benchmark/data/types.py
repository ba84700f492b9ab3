"""The dataset types every stage shares: image sets, evaluation prompts, the loaded dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from benchmark.config import DatasetConfig


class DatasetError(ValueError):
    """The dataset cannot be loaded; the message names the file, line or key."""


@dataclass
class ImageSet:
    """Images (uint8 NCHW at the model resolution), their captions and metadata rows."""

    images: torch.Tensor
    captions: list[str]
    files: list[Path]
    rows: list[dict] = field(default_factory=list)
    folder: Optional[Path] = None

    def __len__(self) -> int:
        return len(self.captions)


@dataclass
class EvalPrompt:
    """One evaluation prompt; ``{}`` in ``template`` is replaced by the placeholder."""

    template: str
    attributes: dict = field(default_factory=dict)  # ground truth the world can check
    ground_truth: list[int] = field(default_factory=list)  # indices into the adaptation set
    memorized: Optional[bool] = None
    paraphrases: list[str] = field(default_factory=list)  # memorization sets: candidates for PRSS

    def text(self, placeholder: str = "") -> str:
        return " ".join(self.template.replace("{}", placeholder).split())


@dataclass
class BenchmarkDataset:
    name: str
    config: DatasetConfig
    adapt: ImageSet
    heldout: ImageSet
    prompts: list[EvalPrompt]
    content_hash: str
