"""Concept accuracy in the offline world: the judge checks attributes the prompt asked for."""

from __future__ import annotations

import torch

from benchmark.world.judge import PRIVATE_STYLE, PROXY_STYLE


def attribute_accuracy(images: torch.Tensor, expected: list[dict], judge) -> dict[str, float]:
    """Per attribute, the fraction of images whose judged value equals the prompted one,
    and how often the private style (striped fill on black) and the public proxy style
    (outlined on gray, where hyperparameters are tuned) appear. ``images`` (uint8 NCHW)
    must be on the judge's device."""
    predicted = judge.predict(images.float() / 127.5 - 1)
    out: dict[str, float] = {}
    for key in judge.HEADS:
        pairs = [(p, e[key]) for p, e in zip(predicted[key], expected) if key in e]
        if pairs:
            out[f"accuracy_{key}"] = sum(p == e for p, e in pairs) / len(pairs)
    for name, style in (("private", PRIVATE_STYLE), ("proxy", PROXY_STYLE)):
        hits = [f == style["fill"] and b == style["background"] for f, b in zip(predicted["fill"], predicted["background"])]
        out[f"{name}_style_rate"] = sum(hits) / max(1, len(hits))
    return out
