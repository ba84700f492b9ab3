"""What the sampling stage hands to evaluation: the images and, per image, where they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch


@dataclass
class Generations:
    """Generated images in plan order with, per image, the prompt it was drawn from."""

    images: torch.Tensor  # uint8 NCHW
    prompt_index: list[int]
    texts: list[str]  # the text actually sampled (placeholder substituted)
    folder: Path  # where the PNGs were written (clean-fid reads folders)
    # Per-image statistics reported by the guidance (first_step_magnitude, triggered, ...).
    stats: dict = field(default_factory=dict)
    items: list = field(default_factory=list)  # the plan's SampleItems, in image order
    index_file: Optional[Path] = None  # images/index.jsonl (rank 0 writes it)
    grid: Optional[Path] = None  # samples_grid.png (rank 0 writes it)
