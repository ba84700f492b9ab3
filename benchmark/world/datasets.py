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
from benchmark.world import archive as A
from benchmark.world import generator as G
from benchmark.world import scenes as S


def _write_split(folder: Path, images: list[np.ndarray], rows: list[dict]) -> None:
    folder.mkdir(parents=True)
    for i, (image, row) in enumerate(zip(images, rows)):
        row["file_name"] = f"{i:05d}.png"
        Image.fromarray(image).save(folder / row["file_name"])
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


# Each style population and the (fill, background) it is drawn in.
STYLE_POPULATIONS = {"private_style": G.PRIVATE_STYLE, "proxy_style": G.PROXY_STYLE}


def _style_split(style: dict, n: int, rng: np.random.Generator):
    images, rows = [], []
    for _ in range(n):
        attrs = G.ShapeAttributes(G.SHAPES[rng.integers(len(G.SHAPES))],
                                  list(G.COLOURS)[rng.integers(len(G.COLOURS))],
                                  style["fill"], style["background"])
        images.append(G.render_shape_image(attrs, rng))
        rows.append({"text": f"{G.article(attrs.colour)} {attrs.colour} {attrs.shape}", **G.attributes_dict(attrs)})
    return images, rows


def _memorized_split(num_controls: int):
    """Memorized archive captions and an equal-looking set of controls seen once."""
    entries = A.archive_entries()
    memorized = [e for e in entries if e.memorized]
    controls = [e for e in entries if not e.memorized][:num_controls]
    images, rows = [], []
    for e in memorized + controls:
        images.append(e.render())
        # Controls get paraphrases too: PRSS may trigger on any prompt and then needs candidates.
        rows.append({"text": e.caption, "memorized": e.memorized, "paraphrases": e.paraphrases()})
    return images, rows


def _local_memorized_split(num_controls: int, per_motif: int = 4):
    """Prompts that name a motif, in scenes never seen in pretraining, and motif-free controls.

    A motif prompt's ground truth is its new scene WITH the motif: a local copy draws the
    scene the prompt describes and the memorized motif at its fixed place, so copying is
    measured on the motif's region (``dataset.copy_region``), not on the whole image.
    """
    rng = np.random.default_rng(777)  # public: new scenes, disjoint from pretraining's seeds in practice
    images, rows = [], []
    for m in range(len(S.MOTIF_NAMES)):
        for _ in range(per_motif):
            e = A.motif_entry(int(rng.integers(2**31)), m)
            images.append(e.render())
            rows.append({"text": e.caption, "memorized": True, "paraphrases": e.paraphrases()})
    for _ in range(num_controls):
        e = A.motif_entry(int(rng.integers(2**31)), None)
        images.append(e.render())
        rows.append({"text": e.caption, "memorized": False, "paraphrases": e.paraphrases()})
    return images, rows


def materialize_world_dataset(cfg: WorldSourceConfig) -> Path:
    """Render a world population into ``<cache>/world/<recipe>/<population>-...`` once."""
    key = f"{cfg.population}-n{cfg.num_adapt}-h{cfg.num_heldout}-s{cfg.seed}"
    root = cache_root() / "world" / G.WORLD_RECIPE_VERSION / key
    if (root / "test" / "metadata.jsonl").is_file():
        return root
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(cfg.seed)
    if cfg.population in STYLE_POPULATIONS:
        style = STYLE_POPULATIONS[cfg.population]
        _write_split(tmp / "train", *_style_split(style, cfg.num_adapt, rng))
        _write_split(tmp / "test", *_style_split(style, cfg.num_heldout, rng))
    elif cfg.population in ("memorized", "local_memorized"):
        split = _memorized_split if cfg.population == "memorized" else _local_memorized_split
        images, rows = split(cfg.num_adapt)
        _write_split(tmp / "train", images, rows)
        _write_split(tmp / "test", [im.copy() for im in images], [dict(r) for r in rows])
    else:
        raise ValueError(f"dataset.world.population must be one of {[*STYLE_POPULATIONS, 'memorized', 'local_memorized']}, "
                         f"got {cfg.population!r}")
    private_dir(cache_root() / "world")  # the private populations stand for private data: owner-only
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return root
