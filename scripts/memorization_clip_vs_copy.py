#!/usr/bin/env python
"""On the offline world, how much does the CLIP score of a memorized prompt measure copying?

For the generations of finished `dataset=tiny_memorized` runs, prints the Pearson
correlation between each memorized-prompt generation's copy similarity (to its ground
truth, the world's pixel descriptor) and its CLIP score against the prompt, and the mean
CLIP score of copies (similarity > 0.75) and of clear non-copies (< 0.5).

    python scripts/memorization_clip_vs_copy.py <run dir> [<run dir> ...]

(results/prss_tiny_world.md: the `none`, `prss`, `pe`, `gni` and `rt` runs of its sweeps.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import OmegaConf  # noqa: E402

from benchmark.config import validate_config  # noqa: E402
from benchmark.data.datasets import load_dataset  # noqa: E402
from benchmark.metrics.encoders import load_clip  # noqa: E402
from benchmark.metrics.memorization import PixelCopyDescriptor  # noqa: E402
from benchmark.models.backbone import PACKAGED_WORLD  # noqa: E402
from benchmark.sampling.plan import plan_prompt_indices  # noqa: E402


def per_image_scores(run_dir: Path, model, processor, descriptor) -> tuple[list[float], list[float]]:
    """(copy similarity, CLIP score) of each generation of a memorized prompt in ``run_dir``."""
    run = validate_config(OmegaConf.create(json.loads((run_dir / "resolved_config.json").read_text())))
    data = load_dataset(run.dataset, run.model.resolution)
    prompt_index = plan_prompt_indices(len(data.prompts), run.eval.num_images, run.eval.images_per_prompt)
    files = sorted((run_dir / "images").glob("*.png"))
    keep = [k for k, p in enumerate(prompt_index) if data.prompts[p].memorized]
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(files[k]).convert("RGB"))).permute(2, 0, 1)
                          for k in keep])
    texts = [data.prompts[prompt_index[k]].text() for k in keep]
    truth = data.adapt.images[[data.prompts[prompt_index[k]].ground_truth[0] for k in keep]]
    similarity = (descriptor(images) * descriptor(truth)).sum(1)
    with torch.no_grad():
        inputs = processor(text=texts, images=[im.permute(1, 2, 0).numpy() for im in images], return_tensors="pt",
                           padding=True)
        image_emb = model.get_image_features(inputs["pixel_values"])
        text_emb = model.get_text_features(inputs["input_ids"], inputs.get("attention_mask"))
        clip = 100 * torch.nn.functional.cosine_similarity(image_emb, text_emb).clamp(min=0)
    return similarity.tolist(), clip.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories of dataset=tiny_memorized jobs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, processor = load_clip(PACKAGED_WORLD / "clip")
    descriptor = PixelCopyDescriptor()
    xs, ys = [], []
    for run_dir in args.runs:
        similarity, clip = per_image_scores(run_dir, model, processor, descriptor)
        xs += similarity
        ys += clip
    xs, ys = np.array(xs), np.array(ys)
    print(f"{len(xs)} memorized-prompt generations; pearson(copy similarity, CLIP score) = {np.corrcoef(xs, ys)[0, 1]:.3f}")
    copies, far = xs > 0.75, xs < 0.5  # 0.75: the world's copy threshold
    print(f"mean CLIP score: copies {ys[copies].mean():.1f} (n={copies.sum()}), "
          f"similarity < 0.5 {ys[far].mean():.1f} (n={far.sum()})")


if __name__ == "__main__":
    main()
