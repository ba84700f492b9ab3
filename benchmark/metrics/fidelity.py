"""Distribution fidelity: FID and KID with clean-fid, between two image folders."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from cleanfid import fid as cleanfid
from PIL import Image


def _identity_resize(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32)


def folder_features(folder: Path, feature_model: Optional[torch.nn.Module], device: torch.device,
                    batch_size: int = 64) -> np.ndarray:
    """Features of every image in ``folder``. ``feature_model=None`` means Inception (clean mode)."""
    if feature_model is None:
        from cleanfid.features import build_feature_extractor

        feature_model = build_feature_extractor("clean", device)  # downloads Inception once
        resize = None  # clean-fid's own anti-aliased resize to 299x299
    else:
        feature_model = feature_model.to(device)
        resize = _identity_resize  # the world's encoder takes its native resolution
    return cleanfid.get_folder_features(
        str(folder), model=feature_model, num_workers=0, batch_size=batch_size, device=device,
        mode="clean", custom_fn_resize=resize, verbose=False,
    )


def image_features(images: torch.Tensor, feature_model: Optional[torch.nn.Module], device: torch.device) -> np.ndarray:
    """:func:`folder_features` of uint8 NCHW images, written as PNGs to a temporary folder
    deleted at once (they are a dataset's images, never a run output)."""
    with tempfile.TemporaryDirectory(prefix="heldout-") as tmp:
        for i, image in enumerate(images):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(Path(tmp) / f"{i:05d}.png")
        return folder_features(Path(tmp), feature_model, device)


def fid_kid(generated: np.ndarray, reference: np.ndarray, kid_subset_size: int, seed: int) -> dict[str, float]:
    """FID and KID (x1e3 as often reported) of two feature sets; KID subsets drawn from ``seed``."""
    state = np.random.get_state()
    np.random.seed(seed)  # clean-fid draws KID subsets from the global numpy RNG
    try:
        kid = cleanfid.kernel_distance(generated, reference, num_subsets=100, max_subset_size=kid_subset_size)
    finally:
        np.random.set_state(state)
    return {"fid": float(cleanfid.fid_from_feats(generated, reference)), "kid": float(kid)}
