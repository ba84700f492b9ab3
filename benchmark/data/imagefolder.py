"""Image-folder datasets (the Hugging Face ``imagefolder`` convention) and config prompts.

Layout::

    my_dataset/
      train/  metadata.jsonl  0001.png ...   # {"file_name": "0001.png", "text": "..."}
      test/   metadata.jsonl  ...
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from benchmark.config import DatasetConfig
from benchmark.data.images import load_image, stack_nchw
from benchmark.data.memorization import paraphrases_of
from benchmark.data.types import DatasetError, DatasetParts, EvalPrompt, ImageSet


def read_metadata(folder: Path, caption_column: str) -> list[dict]:
    """Rows of ``metadata.jsonl``; every row needs ``file_name`` and a caption."""
    meta = folder / "metadata.jsonl"
    if not folder.is_dir():
        raise DatasetError(f"dataset folder does not exist: {folder}")
    if not meta.is_file():
        raise DatasetError(f"no metadata.jsonl in {folder} (the imagefolder layout needs one per split)")
    rows = []
    for lineno, line in enumerate(meta.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{meta}:{lineno}: not valid JSON ({err.msg})") from None
        if "file_name" not in row:
            raise DatasetError(f"{meta}:{lineno}: missing 'file_name'")
        caption = row.get(caption_column)
        if not isinstance(caption, str) or not caption.strip():
            raise DatasetError(f"{meta}:{lineno}: missing caption column '{caption_column}'")
        rows.append(row)
    if not rows:
        raise DatasetError(f"{meta} lists no images: the split is empty")
    return rows


def load_imagefolder_split(folder: Path, caption_column: str, resolution: int,
                           limit: Optional[int] = None) -> ImageSet:
    """The first ``limit`` rows of one split (all when None), in metadata order."""
    rows = read_metadata(folder, caption_column)[:limit]
    files = [folder / r["file_name"] for r in rows]
    images = stack_nchw([load_image(f, resolution) for f in files])
    return ImageSet(images, [r[caption_column] for r in rows], files, rows, folder)


def prompts_from_config(cfg: DatasetConfig, adapt: ImageSet, caption_column: Optional[str] = None) -> list[EvalPrompt]:
    """Evaluation prompts: listed in the YAML, else one per adaptation caption (memorization sets).

    A caption prompt points at its own image as ground truth and carries the row's
    ``memorized`` flag and paraphrases. Attributes are left empty: only the world's
    source knows what its words mean (:mod:`benchmark.world.source`).
    """
    if cfg.eval_prompts:
        return [EvalPrompt(t) for t in cfg.eval_prompts]
    column = caption_column or cfg.caption_column
    return [EvalPrompt(row[column], ground_truth=[i], memorized=row.get("memorized"),
                       paraphrases=paraphrases_of(row, f"{adapt.folder}: row {i + 1}: "))
            for i, row in enumerate(adapt.rows)]


def load_folder_splits(cfg: DatasetConfig, root: Path, resolution: int, caption_column: str) -> DatasetParts:
    """Adaptation split (at most ``max_adapt_images``), held-out split and prompts under ``root``.

    ``heldout_split: random:<fraction>[:<seed>]`` carves a seeded held-out split out of the
    adaptation folder (:mod:`benchmark.data.split`), for sets with a single folder.
    """
    from benchmark.data.split import parse_random_split, random_split

    if (spec := parse_random_split(cfg.heldout_split)) is not None:
        folder = root / cfg.adapt_split
        adapt, heldout = random_split(folder, read_metadata(folder, caption_column), caption_column, resolution,
                                      *spec, cfg.max_adapt_images)
        return DatasetParts(adapt, heldout, prompts_from_config(cfg, adapt, caption_column))
    if not (root / cfg.heldout_split).is_dir() and (root / cfg.adapt_split).is_dir():
        raise DatasetError(
            f"dataset '{cfg.name}': no held-out split folder {root / cfg.heldout_split} (dataset.heldout_split). "
            "For a set with a single folder, set dataset.heldout_split=random:0.2 (a seeded 20% held-out split "
            "for FID/KID), or point dataset.heldout_split at any other folder of images")
    adapt = load_imagefolder_split(root / cfg.adapt_split, caption_column, resolution, cfg.max_adapt_images)
    heldout = load_imagefolder_split(root / cfg.heldout_split, caption_column, resolution)
    return DatasetParts(adapt, heldout, prompts_from_config(cfg, adapt, caption_column))


def load_imagefolder_source(cfg: DatasetConfig, resolution: int) -> DatasetParts:
    """``source: imagefolder``: ``dataset.path`` holds one image folder per split."""
    if not cfg.path:
        raise DatasetError(f"dataset '{cfg.name}': source 'imagefolder' needs 'path'")
    root = Path(os.path.expanduser(cfg.path))
    if not root.is_dir():
        raise DatasetError(f"dataset '{cfg.name}': folder does not exist: {root}")
    return load_folder_splits(cfg, root, resolution, cfg.caption_column)
