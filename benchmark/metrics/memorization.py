"""Memorization: how close is each generation to a training image it might copy?

Real models use SSCD (a copy-detection network, given as a TorchScript file). The offline
world uses :class:`PixelCopyDescriptor`: its images are flat-coloured shapes, and the
world's CLIP embeds attributes (two different "red circles" are near-identical to it),
which says nothing about copying; a normalised pixel descriptor is near 1 only for the
same picture, shifted or re-coloured pictures fall off quickly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class PixelCopyDescriptor(nn.Module):
    """uint8 NCHW -> unit vectors of the mean-centred 16x16 RGB image."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(images.float() / 255.0, 16)
        x = x - x.mean(dim=(1, 2, 3), keepdim=True)
        return F.normalize(x.flatten(1), dim=1)


class SSCDDescriptor(nn.Module):
    """SSCD TorchScript model (e.g. sscd_disc_mixup.torchscript.pt) with its preprocessing."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.model = torch.jit.load(str(path), map_location="cpu").eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float() / 255.0, size=288, mode="bilinear", antialias=True, align_corners=False)
        return F.normalize(self.model((x - self.mean) / self.std), dim=1)


def load_copy_detector(path: Optional[str]) -> nn.Module:
    if path is None:
        return PixelCopyDescriptor()
    if not Path(path).is_file():
        raise FileNotFoundError(f"model.copy_detector={path!r}: no such SSCD TorchScript file")
    return SSCDDescriptor(path)


@torch.no_grad()
def max_similarity(generated: torch.Tensor, references: torch.Tensor, descriptor: nn.Module,
                   candidates: Optional[list[list[int]]] = None) -> torch.Tensor:
    """For each generation, the max cosine similarity to the references it is compared with.

    ``candidates[i]`` restricts generation ``i`` to some references (a prompt's own
    ground-truth images); ``None`` compares every generation with every reference.
    """
    g = descriptor(generated)
    r = descriptor(references)
    sims = g @ r.T
    if candidates is None:
        return sims.max(dim=1).values
    return torch.stack([sims[i, idx].max() for i, idx in enumerate(candidates)])


def crop_region(images: torch.Tensor, region: Sequence[float]) -> torch.Tensor:
    """The ``[x0, y0, x1, y1]`` part (fractions of width and height) of NCHW images."""
    h, w = images.shape[-2:]
    x0, y0, x1, y1 = region
    return images[..., round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w)]


def memorization_summary(similarities: torch.Tensor, threshold: float, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}_similarity_mean": float(similarities.mean()),
        f"{prefix}_fraction_copied": float((similarities > threshold).float().mean()),
    }
