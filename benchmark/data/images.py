"""Reading images from disk at the model resolution (uint8 RGB, short side resized, centre-cropped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from benchmark.data.types import DatasetError


def load_image(path: Path, resolution: int) -> np.ndarray:
    """``path`` as uint8 HWC RGB of ``resolution`` x ``resolution``.

    An image of another size has its short side resized (bicubic) to ``resolution`` and
    is then centre-cropped, so the aspect ratio is kept. A missing or unreadable file is
    a :class:`DatasetError` naming it.
    """
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"image file listed in metadata does not exist: {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from None
    if im.size != (resolution, resolution):
        w, h = im.size
        s = resolution / min(w, h)
        im = im.resize((max(resolution, round(w * s)), max(resolution, round(h * s))), Image.BICUBIC)
        left, top = (im.width - resolution) // 2, (im.height - resolution) // 2
        im = im.crop((left, top, left + resolution, top + resolution))
    return np.asarray(im, dtype=np.uint8)


def stack_nchw(images: list[np.ndarray]) -> torch.Tensor:
    """HWC uint8 arrays -> one contiguous uint8 NCHW tensor (the layout every stage uses)."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
