"""Why the world's memorization detection works or not: two measurements, evaluation only.

1. How much of an image's pixel variance its caption fixes: for archive captions drawn in
   many layouts (and private-style images grouped by shape and colour), the between-caption
   share of the pixel variance. A LAION caption leaves most pixels open.
2. The first-step text-conditional magnitude m_T (Wen et al.) of the memorized archive
   captions against the controls seen once: detection AUC overall and within each named
   background, which shows whether m_T measures memorization or the background word.

    python scripts/diagnose_world_detection.py [--model builtin:tiny] [--draws 4]

Public world data only (archive captions and freshly drawn style images).
"""

from __future__ import annotations

import argparse
import itertools
from collections import defaultdict

import numpy as np
import torch

from benchmark.config import ModelConfig, SamplerConfig, default_config
from benchmark.guidance.calibration import record_magnitudes
from benchmark.metrics.detection import roc_auc
from benchmark.models.backbone import load_backbone
from benchmark.world import archive as A
from benchmark.world import generator as G


def caption_share(groups: dict) -> float:
    """Between-group share of the pixel variance (1 - pooled within-group variance / total)."""
    stacked = {k: np.stack(v).reshape(len(v), -1).astype(np.float64) for k, v in groups.items()}
    everything = np.concatenate(list(stacked.values()))
    within = sum(x.var(axis=0).sum() * len(x) for x in stacked.values()) / len(everything)
    return float(1 - within / everything.var(axis=0).sum())


def main() -> None:
    """``python scripts/diagnose_world_detection.py``: print both measurements."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:tiny")
    p.add_argument("--draws", type=int, default=4, help="first-step draws per caption")
    args = p.parse_args()
    torch.manual_seed(0)
    entries = A.archive_entries()
    singles = [e for e in entries if not e.memorized]
    layouts = {e.caption: [e.render(layout_seed=50_000 + 7 * i + k) for k in range(12)] for i, e in enumerate(singles[:60])}
    rng = np.random.default_rng(0)
    style = defaultdict(list)
    for shape, colour in itertools.product(G.SHAPES, G.COLOURS):
        style[(shape, colour)] += [G.render_shape_image(G.ShapeAttributes(shape, colour, **G.PRIVATE_STYLE), rng)
                                   for _ in range(12)]
    print(f"world recipe {G.WORLD_RECIPE_VERSION}, model {args.model}")
    print(f"share of pixel variance the caption fixes: archive scenes {caption_share(layouts):.3f} "
          f"(60 captions x 12 layouts); private style, by shape and colour {caption_share(style):.3f}")

    backbone = load_backbone(default_config(ModelConfig, name="diagnosis", pretrained=args.model))
    chosen = [e for e in entries if e.memorized] + singles[:48]
    prompts = [e.caption for e in chosen for _ in range(args.draws)]
    sampler = default_config(SamplerConfig, num_inference_steps=2, guidance_scale=4.0, batch_size=64)
    m = record_magnitudes(backbone, prompts, [1000 + i for i in range(len(prompts))], sampler).first_step
    m = m.view(len(chosen), args.draws).mean(1).numpy()
    memorized = np.array([e.memorized for e in chosen])
    background = np.array([e.scene.background for e in chosen])
    print(f"first-step m_T, {memorized.sum()} memorized vs {(~memorized).sum()} control captions, {args.draws} draws "
          f"each: AUC {roc_auc(m, memorized):.3f} (mean m_T memorized {m[memorized].mean():.2f}, controls "
          f"{m[~memorized].mean():.2f})")
    for b in sorted(set(background)):
        s = background == b
        mem, ctl = m[s & memorized], m[s & ~memorized]
        if len(mem) and len(ctl):
            print(f"  on {b:6s}: {len(mem):2d} memorized (m_T {mem.min():.1f}-{mem.max():.1f}), {len(ctl):2d} "
                  f"controls (mean {ctl.mean():.1f}, max {ctl.max():.1f}): AUC {roc_auc(m[s], memorized[s]):.3f}")
