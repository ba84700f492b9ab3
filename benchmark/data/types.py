"""The dataset types every stage shares: image sets, evaluation prompts, the loaded dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

import torch

from benchmark.config import DatasetConfig
from benchmark.utils.cache import keyed_digest


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


class DatasetParts(NamedTuple):
    """What a dataset source loads; :func:`benchmark.data.sources.load_dataset` assembles it."""

    adapt: ImageSet
    heldout: ImageSet  # may be ``adapt`` itself (memorization sets have no held-out split)
    prompts: list[EvalPrompt]


def content_hash(adapt: ImageSet, heldout: ImageSet) -> str:
    """16 hex digits of a keyed hash (:func:`benchmark.utils.cache.keyed_digest`) over the
    images and captions of both splits, in order.

    Keyed, because the data is private: the digest identifies the dataset on this machine
    (resume, the embedding cache) and says nothing about it to anyone without the cache's
    secret key. A held-out split that *is* the adaptation split is hashed once.
    """
    parts = []
    for s in (adapt,) if heldout is adapt else (adapt, heldout):
        parts += [s.images.numpy().tobytes(), "\n".join(s.captions).encode()]
    return keyed_digest(parts)


@dataclass
class BenchmarkDataset:
    """A loaded dataset: its config, both splits, the evaluation prompts and a content hash."""

    name: str
    config: DatasetConfig
    adapt: ImageSet
    heldout: ImageSet
    prompts: list[EvalPrompt]
    content_hash: str  # see content_hash(); recorded in metrics.json as dataset_hash
