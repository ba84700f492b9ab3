"""Concept accuracy in the offline world: the judge checks attributes the prompt asked for."""

from __future__ import annotations

import torch

from benchmark.world.judge import PRIVATE_STYLE


def attribute_accuracy(images: torch.Tensor, expected: list[dict], judge) -> dict[str, float]:
    """Per attribute, the fraction of images whose judged value equals the prompted one,
    and how often the private style (striped fill on black) appears. ``images`` (uint8
    NCHW) must be on the judge's device."""
    predicted = judge.predict(images.float() / 127.5 - 1)
    out: dict[str, float] = {}
    for key in judge.HEADS:
        pairs = [(p, e[key]) for p, e in zip(predicted[key], expected) if key in e]
        if pairs:
            out[f"accuracy_{key}"] = sum(p == e for p, e in pairs) / len(pairs)
    style = [f == PRIVATE_STYLE["fill"] and b == PRIVATE_STYLE["background"]
             for f, b in zip(predicted["fill"], predicted["background"])]
    out["private_style_rate"] = sum(style) / max(1, len(style))
    return out
