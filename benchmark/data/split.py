"""A seeded held-out split of a single image folder (``dataset.heldout_split=random:0.2``).

Many Hugging Face ``imagefolder`` sets ship one folder and no test split. FID/KID need
held-out images the adaptation never saw, so ``heldout_split: random:<fraction>[:<seed>]``
holds out that fraction of the adaptation folder's rows, drawn with its own seed (default
0), not the run's: every seed of a sweep then evaluates against the same held-out images
and adapts on the same rest. ``max_adapt_images`` applies to the rest, after the split.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Optional

from benchmark.data.images import load_image, stack_nchw
from benchmark.data.types import DatasetError, ImageSet

_SPEC = re.compile(r"^random:(?P<fraction>[0-9.]+)(?::(?P<seed>\d+))?$")


def parse_random_split(spec: str) -> Optional[tuple[float, int]]:
    """``"random:0.2:3"`` -> (0.2, 3); ``"random:0.2"`` -> (0.2, 0); a split folder name -> None."""
    if not spec.startswith("random:"):
        return None
    match = _SPEC.match(spec)
    fraction = float(match["fraction"]) if match and match["fraction"].count(".") <= 1 else None
    if fraction is None or not 0 < fraction < 1:
        raise DatasetError(f"dataset.heldout_split={spec!r}: expected random:<fraction in (0, 1)>[:<seed>], "
                           "e.g. random:0.2")
    return fraction, int(match["seed"] or 0)


def _image_set(folder: Path, rows: list[dict], caption_column: str, resolution: int) -> ImageSet:
    files = [folder / r["file_name"] for r in rows]
    return ImageSet(stack_nchw([load_image(f, resolution) for f in files]), [r[caption_column] for r in rows],
                    files, rows, folder)


def random_split(folder: Path, rows: list[dict], caption_column: str, resolution: int, fraction: float, seed: int,
                 limit: Optional[int]) -> tuple[ImageSet, ImageSet]:
    """(adaptation, held-out) image sets from one folder's metadata rows; both keep metadata order."""
    n_heldout = round(len(rows) * fraction)
    if n_heldout < 2 or n_heldout >= len(rows):
        raise DatasetError(f"{folder}: random:{fraction:g} of {len(rows)} images holds out {n_heldout}; FID/KID "
                           "need at least 2 held-out images and the adaptation at least 1 (dataset.heldout_split)")
    picked = set(random.Random(seed).sample(range(len(rows)), n_heldout))
    adapt = [r for i, r in enumerate(rows) if i not in picked][:limit]
    heldout = [r for i, r in enumerate(rows) if i in picked]
    return (_image_set(folder, adapt, caption_column, resolution),
            _image_set(folder, heldout, caption_column, resolution))
