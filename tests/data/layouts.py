"""Writers of the official data layouts, in their released formats, for tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.data.memorization import PRSS_RELEASE_FILE, WEN_FILE

CAPTIONS = ["the starry night poster by van gogh", "mothers influence on her young hippo",
            "a portrait of a living room with a red sofa", "an aerial photo of the city of paris at night"]


def _png(path: Path, seed: int, size=(72, 60)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def write_prss_release(root: Path, n: int = 4, images_per_prompt: int = 2, paraphrases: int = 25) -> Path:
    """``sdv1_500_mem_groundtruth/``: the jsonl with caption, index, url, caption1..K and gt_images/<index>/."""
    folder = root / "sdv1_500_mem_groundtruth"
    lines = []
    for i in range(n):
        index = 10 * i + 3  # release indices are not 0..n-1
        row = {"caption": CAPTIONS[i % len(CAPTIONS)], "index": index, "url": f"https://example.org/{index}.jpg"}
        row.update({f"caption{k}": f"{CAPTIONS[i % len(CAPTIONS)]}, variant {k}" for k in range(1, paraphrases + 1)})
        lines.append(json.dumps(row))
        for j in range(images_per_prompt):
            _png(folder / "gt_images" / str(index) / f"{j}.png", seed=100 * i + j)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PRSS_RELEASE_FILE).write_text("\n".join(lines) + "\n")
    return folder


def write_wen(root: Path, n: int = 4, with_images_for: tuple[int, ...] = ()) -> Path:
    """Wen et al.'s ``sdv1_500_memorized.jsonl`` (caption, index, url); gt_images only for some indices."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"caption": CAPTIONS[i % len(CAPTIONS)] + f" {i}", "index": i, "url": f"https://example.org/{i}.jpg"}
            for i in range(n)]
    (root / WEN_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    for i in with_images_for:
        _png(root / "gt_images" / str(i) / "0.png", seed=i)
    return root


def write_single_imagefolder(root: Path, n: int = 10) -> Path:
    """A Hugging Face imagefolder with one folder: ``metadata.jsonl`` (file_name, text) beside the images."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        _png(root / f"{i:04d}.png", seed=i)
        rows.append(json.dumps({"file_name": f"{i:04d}.png", "text": f"a painting of a garden, number {i}"}))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return root
