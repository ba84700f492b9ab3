"""Sampling as Lightning ``predict``: prompts in, uint8 images out, one seed per image."""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from torch.utils.data import Dataset, default_collate

from benchmark.config import SamplerConfig
from benchmark.models.backbone import Backbone
from benchmark.sampling.sampler import Guidance, generate_images


class PromptSeedDataset(Dataset):
    """Item i: the i-th (prompt, seed) pair; sharding it shards the images, not the noise.

    ``extras[i]`` adds per-image information a guidance method reads from the batch
    (e.g. ``paraphrases``, ``memorized``); it travels with the item, so sharding keeps it.
    """

    def __init__(self, prompts: list[str], seeds: list[int], prompt_index: list[int],
                 extras: Optional[list[dict]] = None):
        self.prompts, self.seeds, self.prompt_index = prompts, seeds, prompt_index
        self.extras = extras

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i: int):
        item = {"index": i, "prompt": self.prompts[i], "seed": self.seeds[i], "prompt_index": self.prompt_index[i]}
        if self.extras is not None:
            item.update(self.extras[i])
        return item


def collate_prompts(items: list[dict]) -> dict:
    """Default collation for the core keys; extras stay per-image Python lists (ragged paraphrase lists)."""
    core = ("index", "prompt", "seed", "prompt_index")
    batch = default_collate([{k: it[k] for k in core} for it in items])
    for key in items[0].keys() - set(core):
        batch[key] = [it[key] for it in items]
    return batch


class SamplingModule(L.LightningModule):
    """Wraps the backbone for ``Trainer.predict``; guidance decides each step's noise."""

    def __init__(self, backbone: Backbone, sampler: SamplerConfig, guidance: Guidance):
        super().__init__()
        # Registered as children so Lightning moves them to the device.
        self.text_encoder, self.unet, self.vae = backbone.text_encoder, backbone.unet, backbone.vae
        self.backbone = backbone
        self.sampler = sampler
        self.guidance = guidance

    @torch.no_grad()
    def predict_step(self, batch, batch_idx):
        images = generate_images(self.backbone, list(batch["prompt"]), batch["seed"].tolist(), self.sampler,
                                 self.guidance, batch)
        return {"index": batch["index"].cpu(), "images": images.cpu(), "stats": self.guidance.batch_stats()}
