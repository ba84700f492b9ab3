"""Prompt alignment: CLIP score (torchmetrics) of each image against its prompt."""

from __future__ import annotations

from typing import Callable

import torch
from torchmetrics.multimodal.clip_score import CLIPScore


def clip_score(images: torch.Tensor, prompts: list[str], model_and_processor: Callable | str,
               batch_size: int = 64, device: torch.device | str = "cpu") -> float:
    """Mean CLIP score of uint8 NCHW images against their prompts: torchmetrics'
    ``max(mean(100 * cos), 0)`` (the clamp applies to the mean, not to each image as in
    Hessel et al.; the two differ only where some cosines are negative).

    Computed on ``device`` (the CLIP model must be there already, or is moved there).
    """
    metric = CLIPScore(model_name_or_path=model_and_processor).to(device)
    for i in range(0, len(prompts), batch_size):
        metric.update(images[i:i + batch_size].to(device), prompts[i:i + batch_size])
    return float(metric.compute())
