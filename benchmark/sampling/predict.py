"""Sampling as Lightning ``predict``: plan items in, uint8 images and guidance statistics out."""

from __future__ import annotations

from typing import Sequence

import lightning as L
import torch
from torch.utils.data import Dataset

from benchmark.config import SamplerConfig
from benchmark.models.backbone import Backbone
from benchmark.sampling.plan import SampleItem
from benchmark.sampling.sampler import Guidance, generate_images


class PlanDataset(Dataset):
    """Item i: the plan's i-th :class:`SampleItem`. Sharding it (DDP) shards the images, not the
    noise: each item carries its own seed and plan index, so the gathered set is the same."""

    def __init__(self, items: Sequence[SampleItem]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> SampleItem:
        return self.items[i]


def collate_items(items: list[SampleItem]) -> list[SampleItem]:
    """A batch is the list of its items (ragged paraphrase lists stay per item)."""
    return list(items)


class SamplingModule(L.LightningModule):
    """Wraps the backbone for ``Trainer.predict``; the guidance rule decides each step's noise."""

    def __init__(self, backbone: Backbone, sampler: SamplerConfig, guidance: Guidance):
        super().__init__()
        # Registered as children so Lightning moves them to the device.
        self.text_encoder, self.unet, self.vae = backbone.text_encoder, backbone.unet, backbone.vae
        self.backbone = backbone
        self.sampler = sampler
        self.guidance = guidance

    @torch.no_grad()
    def predict_step(self, batch: list[SampleItem], batch_idx: int) -> dict:
        images = generate_images(self.backbone, batch, self.sampler, self.guidance)
        return {"index": torch.tensor([it.index for it in batch], dtype=torch.long), "images": images.cpu(),
                "stats": {k: v.cpu() for k, v in self.guidance.batch_stats().items()}}
