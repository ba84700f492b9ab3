"""Datasets from YAML: image folders, Hugging Face datasets and the offline world.

Every source ends up as two :class:`ImageSet` objects (the adaptation split, private,
and the held-out split used for FID/KID) and a list of :class:`EvalPrompt`. The world
writes itself out as an image folder first, so all sources share one loading path.

Image-folder layout (the Hugging Face ``imagefolder`` convention)::

    my_dataset/
      train/  metadata.jsonl  0001.png ...   # {"file_name": "0001.png", "text": "..."}
      test/   metadata.jsonl  ...
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from benchmark.config import DatasetConfig


from benchmark.data.types import BenchmarkDataset, DatasetError, EvalPrompt, ImageSet  # noqa: F401
from benchmark.utils.cache import cache_root  # noqa: F401


def _load_image(path: Path, resolution: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"image file listed in metadata does not exist: {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from None
    if im.size != (resolution, resolution):  # resize the short side, then centre-crop
        w, h = im.size
        s = resolution / min(w, h)
        im = im.resize((max(resolution, round(w * s)), max(resolution, round(h * s))), Image.BICUBIC)
        left, top = (im.width - resolution) // 2, (im.height - resolution) // 2
        im = im.crop((left, top, left + resolution, top + resolution))
    return np.asarray(im, dtype=np.uint8)


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
    rows = read_metadata(folder, caption_column)[:limit]
    files = [folder / r["file_name"] for r in rows]
    images = np.stack([_load_image(f, resolution) for f in files])
    return ImageSet(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                    [r[caption_column] for r in rows], files, rows, folder)


def load_hf_split(cfg: DatasetConfig, split: str, resolution: int, limit: Optional[int]) -> ImageSet:
    """A split of a Hugging Face dataset, written to the cache as an image folder."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise DatasetError("dataset.source=hf needs the 'datasets' package") from None
    folder = cache_root() / "hf" / cfg.path.replace("/", "__") / split
    if not (folder / "metadata.jsonl").is_file():
        try:
            ds = datasets.load_dataset(cfg.path, split=split)
        except Exception as err:  # the hub raises many types; all mean "not available here"
            raise DatasetError(
                f"cannot load Hugging Face dataset {cfg.path!r} split {split!r}: {err}. Offline, download it "
                "first (or save it as an image folder and use source: imagefolder)."
            ) from err
        for key in (cfg.image_column, cfg.caption_column):
            if key not in ds.column_names:
                raise DatasetError(f"dataset {cfg.path!r} has no column {key!r} (columns: {ds.column_names})")
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, row in enumerate(ds):
            name = f"{i:06d}.png"
            row[cfg.image_column].convert("RGB").save(tmp / name)
            lines.append(json.dumps({"file_name": name, "text": row[cfg.caption_column]}))
        (tmp / "metadata.jsonl").write_text("\n".join(lines) + "\n")
        os.replace(tmp, folder)
    return load_imagefolder_split(folder, "text", resolution, limit)


def _content_hash(*sets: ImageSet) -> str:
    h = hashlib.sha256()
    for s in sets:
        h.update(s.images.numpy().tobytes())
        h.update("\n".join(s.captions).encode())
    return h.hexdigest()[:16]


def prompts_from_config(cfg: DatasetConfig, adapt: ImageSet) -> list[EvalPrompt]:
    """Evaluation prompts: listed in the YAML, else one per adaptation caption (memorization sets)."""
    from benchmark.world.labels import attributes_in_text

    if cfg.eval_prompts:
        return [EvalPrompt(t, attributes=attributes_in_text(t)) for t in cfg.eval_prompts]
    from benchmark.data.memorization import paraphrases_of

    prompts = []
    for i, row in enumerate(adapt.rows):
        prompts.append(EvalPrompt(row[cfg.caption_column], attributes=attributes_in_text(row[cfg.caption_column]),
                                  ground_truth=[i], memorized=row.get("memorized"),
                                  paraphrases=paraphrases_of(row, f"{adapt.folder}: row {i + 1}: ")))
    return prompts


def load_dataset(cfg: DatasetConfig, resolution: int) -> BenchmarkDataset:
    """Load the adaptation and held-out splits and the evaluation prompts of a dataset config."""
    if cfg.source == "memorization":
        from benchmark.data.memorization import load_memorization_dataset

        return load_memorization_dataset(cfg, resolution)
    if cfg.source == "world":
        from benchmark.world.datasets import materialize_world_dataset

        if cfg.world is None:
            raise DatasetError(f"dataset '{cfg.name}': source 'world' needs a 'world:' section")
        root = materialize_world_dataset(cfg.world)
    elif cfg.source == "imagefolder":
        if not cfg.path:
            raise DatasetError(f"dataset '{cfg.name}': source 'imagefolder' needs 'path'")
        root = Path(os.path.expanduser(cfg.path))
        if not root.is_dir():
            raise DatasetError(f"dataset '{cfg.name}': folder does not exist: {root}")
    if cfg.source == "hf":
        adapt = load_hf_split(cfg, cfg.adapt_split, resolution, cfg.max_adapt_images)
        heldout = load_hf_split(cfg, cfg.heldout_split, resolution, None)
    else:
        caption = "text" if cfg.source == "world" else cfg.caption_column
        adapt = load_imagefolder_split(root / cfg.adapt_split, caption, resolution, cfg.max_adapt_images)
        heldout = load_imagefolder_split(root / cfg.heldout_split, caption, resolution)
    if len(adapt) < 1:
        raise DatasetError(f"dataset '{cfg.name}': the adaptation split is empty")
    return BenchmarkDataset(cfg.name, cfg, adapt, heldout, prompts_from_config(cfg, adapt), _content_hash(adapt, heldout))
