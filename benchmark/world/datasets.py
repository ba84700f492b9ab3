"""Write the offline world's datasets to disk as image folders (cached, atomic)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.config import WorldSourceConfig
from benchmark.utils.cache import cache_root, private_dir
from benchmark.world import generator as G


def _write_split(folder: Path, images: list[np.ndarray], rows: list[dict]) -> None:
    folder.mkdir(parents=True)
    for i, (image, row) in enumerate(zip(images, rows)):
        row["file_name"] = f"{i:05d}.png"
        Image.fromarray(image).save(folder / row["file_name"])
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _private_style_split(n: int, rng: np.random.Generator):
    images, rows = [], []
    for _ in range(n):
        attrs = G.ShapeAttributes(G.SHAPES[rng.integers(len(G.SHAPES))],
                                  list(G.COLOURS)[rng.integers(len(G.COLOURS))],
                                  G.PRIVATE_STYLE["fill"], G.PRIVATE_STYLE["background"])
        images.append(G.render_shape_image(attrs, rng))
        rows.append({"text": f"{G.article(attrs.colour)} {attrs.colour} {attrs.shape}", **G.attributes_dict(attrs)})
    return images, rows


def _memorized_split(num_controls: int):
    """Memorized archive captions and an equal-looking set of controls seen once."""
    entries = G.archive_entries()
    memorized = [e for e in entries if e.memorized]
    controls = [e for e in entries if not e.memorized][:num_controls]
    images, rows = [], []
    for e in memorized + controls:
        images.append(G.render_archive_image(e.image_seed))
        # Controls get paraphrases too: PRSS may trigger on any prompt and then needs candidates.
        rows.append({"text": e.caption, "memorized": e.memorized, "paraphrases": e.paraphrases()})
    return images, rows


def materialize_world_dataset(cfg: WorldSourceConfig) -> Path:
    """Render a world population into ``<cache>/world/<recipe>/<population>-...`` once."""
    key = f"{cfg.population}-n{cfg.num_adapt}-h{cfg.num_heldout}-s{cfg.seed}"
    if cfg.population == "memorized":
        key += "-v2"  # v2: control captions carry paraphrases as well
    root = cache_root() / "world" / G.WORLD_RECIPE_VERSION / key
    if (root / "test" / "metadata.jsonl").is_file():
        return root
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(cfg.seed)
    if cfg.population == "private_style":
        _write_split(tmp / "train", *_private_style_split(cfg.num_adapt, rng))
        _write_split(tmp / "test", *_private_style_split(cfg.num_heldout, rng))
    elif cfg.population == "memorized":
        images, rows = _memorized_split(cfg.num_adapt)
        _write_split(tmp / "train", images, rows)
        _write_split(tmp / "test", [im.copy() for im in images], [dict(r) for r in rows])
    else:
        raise ValueError(f"dataset.world.population must be 'private_style' or 'memorized', got {cfg.population!r}")
    private_dir(cache_root() / "world")  # the private populations stand for private data: owner-only
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return root
