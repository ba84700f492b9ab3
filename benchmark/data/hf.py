"""Hugging Face datasets, written once to the cache as an image folder and read from there."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from benchmark.config import DatasetConfig
from benchmark.data.imagefolder import load_imagefolder_split, prompts_from_config
from benchmark.data.types import DatasetError, DatasetParts, ImageSet
from benchmark.utils.cache import cache_root, private_dir

# The cached copy's caption column (whatever the hub dataset calls it).
CACHED_CAPTION = "text"


def hf_cache_folder(path: str, split: str) -> Path:
    return cache_root() / "hf" / path.replace("/", "__") / split


def load_hf_split(cfg: DatasetConfig, split: str, resolution: int, limit: Optional[int]) -> ImageSet:
    """A split of a Hugging Face dataset, written to the cache as an image folder (atomically) on first use."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise DatasetError("dataset.source=hf needs the 'datasets' package") from None
    folder = hf_cache_folder(cfg.path, split)
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
        private_dir(cache_root() / "hf")  # a private set's copy: owner-only, like the embedding cache
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, row in enumerate(ds):
            name = f"{i:06d}.png"
            row[cfg.image_column].convert("RGB").save(tmp / name)
            lines.append(json.dumps({"file_name": name, CACHED_CAPTION: row[cfg.caption_column]}))
        (tmp / "metadata.jsonl").write_text("\n".join(lines) + "\n")
        os.replace(tmp, folder)
    return load_imagefolder_split(folder, CACHED_CAPTION, resolution, limit)


def load_hf_source(cfg: DatasetConfig, resolution: int) -> DatasetParts:
    """``source: hf``: ``dataset.path`` is a hub id; both splits come from it."""
    if not cfg.path:
        raise DatasetError(f"dataset '{cfg.name}': source 'hf' needs 'path' (a Hugging Face dataset id)")
    adapt = load_hf_split(cfg, cfg.adapt_split, resolution, cfg.max_adapt_images)
    heldout = load_hf_split(cfg, cfg.heldout_split, resolution, None)
    return DatasetParts(adapt, heldout, prompts_from_config(cfg, adapt, CACHED_CAPTION))
