"""Sampling as Lightning ``predict``: prompts in, uint8 images out, one seed per image."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import Dataset

from benchmark.config import SamplerConfig
from benchmark.models.backbone import Backbone
from benchmark.sampling.sampler import Guidance, sample_latents


class PromptSeedDataset(Dataset):
    """Item i: the i-th (prompt, seed) pair; sharding it shards the images, not the noise."""

    def __init__(self, prompts: list[str], seeds: list[int], prompt_index: list[int]):
        self.prompts, self.seeds, self.prompt_index = prompts, seeds, prompt_index

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i: int):
        return {"index": i, "prompt": self.prompts[i], "seed": self.seeds[i], "prompt_index": self.prompt_index[i]}


class SamplingModule(L.LightningModule):
    """Wraps the backbone for ``Trainer.predict``; guidance decides each step's noise."""

    def __init__(self, backbone: Backbone, sampler: SamplerConfig, guidance: Guidance):
        super().__init__()
        self.text_encoder, self.unet, self.vae = backbone.text_encoder, backbone.unet, backbone.vae
        self.backbone = backbone
        self.sampler = sampler
        self.guidance = guidance
        channels = self.unet.config.in_channels
        size = self.unet.config.sample_size
        self.latent_shape = (channels, size, size)

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        ids = self.backbone.tokenize(prompts).to(self.device)
        return self.text_encoder(ids)[0].to(self.unet.dtype)

    @torch.no_grad()
    def predict_step(self, batch, batch_idx):
        prompts = list(batch["prompt"])
        cond = self.encode_text(prompts)
        uncond = self.encode_text([""] * len(prompts))
        latents = sample_latents(self.unet, self.backbone.scheduler, cond, uncond, batch["seed"].tolist(),
                                 self.sampler, self.latent_shape, self.guidance, batch)
        images = self.backbone.decode_latents(latents)
        return {"index": batch["index"].cpu(), "images": images.cpu()}
