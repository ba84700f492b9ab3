"""On the offline world, how much does the CLIP score of a memorized prompt measure copying?

For the generations of finished ``dataset=tiny_memorized`` runs: the Pearson correlation
between each memorized-prompt generation's copy similarity (to its ground truth, under
the world's pixel descriptor) and its CLIP score against the prompt, and the mean CLIP
score of copies (similarity > 0.75, the world's copy threshold) and of clear non-copies
(< 0.5). Entry point: ``scripts/memorization_clip_vs_copy.py <run dir> ...``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from benchmark.config import validate_config
from benchmark.datasets import load_dataset
from benchmark.metrics.encoders import load_clip
from benchmark.metrics.memorization import PixelCopyDescriptor
from benchmark.models.backbone import PACKAGED_WORLD
from benchmark.sampling.generate import read_index

COPY, NOT_COPY = 0.75, 0.5  # the world's copy threshold; clearly not a copy


def per_image_scores(run_dir: Path, model, processor, descriptor) -> tuple[list[float], list[float]]:
    """(copy similarity, CLIP score) of each generation of a memorized prompt in ``run_dir``.

    The prompt of each image is read from the run's ``images/index.jsonl``; the ground truth
    from its dataset (its resolved config).
    """
    run = validate_config(OmegaConf.create(json.loads((run_dir / "resolved_config.json").read_text())))
    data = load_dataset(run.dataset, run.model.resolution)
    rows = [r for r in read_index(run_dir / "images") if r["memorized"]]
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(run_dir / "images" / r["file"]).convert("RGB")))
                          .permute(2, 0, 1) for r in rows])
    texts = [r["original"] for r in rows]
    truth = data.adapt.images[[data.prompts[r["prompt_index"]].ground_truth[0] for r in rows]]
    similarity = (descriptor(images) * descriptor(truth)).sum(1)
    with torch.no_grad():
        inputs = processor(text=texts, images=[im.permute(1, 2, 0).numpy() for im in images], return_tensors="pt",
                           padding=True)
        image_emb = model.get_image_features(inputs["pixel_values"])
        text_emb = model.get_text_features(inputs["input_ids"], inputs.get("attention_mask"))
        clip = 100 * torch.nn.functional.cosine_similarity(image_emb, text_emb).clamp(min=0)
    return similarity.tolist(), clip.tolist()


def clip_vs_copy(run_dirs: Sequence[Path], clip_source: Path = PACKAGED_WORLD / "clip") -> dict[str, float]:
    """Pooled over ``run_dirs``: n, the Pearson correlation, and the mean CLIP score of copies and non-copies."""
    model, processor = load_clip(clip_source)
    descriptor = PixelCopyDescriptor()
    xs, ys = [], []
    for run_dir in run_dirs:
        similarity, clip = per_image_scores(Path(run_dir), model, processor, descriptor)
        xs += similarity
        ys += clip
    xs, ys = np.array(xs), np.array(ys)
    copies, far = xs > COPY, xs < NOT_COPY
    return {"n": len(xs), "pearson": float(np.corrcoef(xs, ys)[0, 1]),
            "clip_copies": float(ys[copies].mean()), "n_copies": int(copies.sum()),
            "clip_not_copies": float(ys[far].mean()), "n_not_copies": int(far.sum())}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories of dataset=tiny_memorized jobs")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    r = clip_vs_copy(args.runs)
    print(f"{r['n']} memorized-prompt generations; pearson(copy similarity, CLIP score) = {r['pearson']:.3f}")
    print(f"mean CLIP score: copies {r['clip_copies']:.1f} (n={r['n_copies']}), "
          f"similarity < {NOT_COPY} {r['clip_not_copies']:.1f} (n={r['n_not_copies']})")
    return 0
