"""Image and text encoders behind the metrics: the world's own, or the real ones."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import CLIPModel, CLIPProcessor


class ClipFeatures(nn.Module):
    """CLIPModel whose ``get_*_features`` return tensors.

    transformers 5 returns output objects (features in ``pooler_output``) where
    torchmetrics' CLIPScore (1.9) expects tensors; this adapter serves both.
    """

    def __init__(self, clip: CLIPModel):
        super().__init__()
        self.clip = clip
        self.config = clip.config

    @staticmethod
    def _tensor(out) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._tensor(self.clip.get_image_features(pixel_values=pixel_values))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._tensor(self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


def load_clip(name_or_path: str | Path) -> tuple[ClipFeatures, CLIPProcessor]:
    """A CLIP model and processor (the world's, in ``<world>/clip``, or a hub id)."""
    model = ClipFeatures(CLIPModel.from_pretrained(name_or_path).eval().requires_grad_(False))
    processor = CLIPProcessor.from_pretrained(name_or_path)
    return model, processor


class ClipImageFeatures(nn.Module):
    """clean-fid feature extractor from a CLIP vision tower: float 0-255 NCHW -> features.

    The offline world has no Inception weights, so its CLIP image tower stands in;
    FID values are then comparable within the world, not with published Inception FIDs.
    """

    def __init__(self, clip: ClipFeatures, mean: list[float], std: list[float]):
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.clip.config.vision_config.image_size
        x = images.float()
        if x.shape[-1] != size or x.shape[-2] != size:  # a real CLIP tower expects e.g. 224 px
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", antialias=True)
        return self.clip.get_image_features((x - self.mean) / self.std)
