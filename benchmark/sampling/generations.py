"""What the sampling stage hands to evaluation: the images and, per image, where they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class Generations:
    """Generated images with, per image, the prompt it was drawn from."""

    images: torch.Tensor  # uint8 NCHW
    prompt_index: list[int]
    texts: list[str]  # the text actually sampled (placeholder substituted)
    folder: Path  # where the PNGs were written (clean-fid reads folders)
    # Per-image statistics reported by the guidance (first_step_magnitude, triggered, ...).
    stats: dict = field(default_factory=dict)
