"""Checks of what evaluation will need, made before any training or sampling starts.

Evaluation runs last: a CLIP model that cannot be loaded, a missing SSCD file or too few
images for FID/KID would otherwise surface only after minutes (hours, on real models) of
adaptation and sampling, as a hub error or ``LinAlgError: ... sqrtm: -102``. Each check
reads only file names and configs (no weights) and raises :class:`PreflightError` naming
the key and the file.

The run calls :func:`preflight` right after loading the model and the dataset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from benchmark.config import EvalConfig, ModelConfig
from benchmark.models.backbone import ModelLoadError

# Metrics that load the CLIP model (fidelity only where it stands in for Inception).
CLIP_METRICS = ("clip_score",)
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


class PreflightError(ModelLoadError):
    """Evaluation would fail later; the message names the key (and file) to fix."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false")


def check_clip(name: Optional[str]) -> None:
    """``model.clip_model`` names a loadable CLIPModel: a folder with its config, weights and
    processor, or a hub id that is cached (offline) or downloadable (online)."""
    if not name:
        return
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        missing = [] if (path / "config.json").is_file() else ["config.json"]
        if not any((path / f).is_file() for f in PROCESSOR_FILES):  # transformers 5 writes processor_config.json
            missing.append(" or ".join(PROCESSOR_FILES))
        if not any((path / f).is_file() for f in WEIGHT_FILES):
            missing.append(" or ".join(WEIGHT_FILES[:2]))
        if missing:
            raise PreflightError(f"model.clip_model={name!r}: the folder lacks {', '.join(missing)} "
                                 "(expected a CLIPModel saved with its CLIPProcessor)")
        return
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:  # a path, not an owner/name hub id
        raise PreflightError(f"model.clip_model={name!r}: no such folder")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if not isinstance(cached, str) and _offline():
        raise PreflightError(
            f"model.clip_model={name!r} cannot be loaded: not a local folder and not in the Hugging Face cache "
            "(HF_HUB_OFFLINE is set). Download it first, point model.clip_model at a folder (an SD-shaped build "
            "has one: <folder>/clip), or leave clip_score out of eval.metrics")


def check_copy_detector(path: Optional[str]) -> None:
    """``model.copy_detector`` (SSCD TorchScript) exists when set; null is the pixel descriptor."""
    if path is not None and not Path(os.path.expanduser(path)).is_file():
        raise PreflightError(f"model.copy_detector={path!r}: no such SSCD TorchScript file (e.g. "
                             "sscd_disc_mixup.torchscript.pt), or set model.copy_detector=null")


def check_fidelity(eval_cfg: EvalConfig, heldout_images: int) -> None:
    """FID/KID need at least 2 generated and 2 held-out images (a covariance from one image is singular)."""
    if eval_cfg.num_images < 2:
        raise PreflightError(f"eval.num_images={eval_cfg.num_images}: FID/KID need at least 2 generated images "
                             "(or leave fidelity out of eval.metrics)")
    if heldout_images < 2:
        raise PreflightError(f"the held-out split has {heldout_images} image(s) (dataset.heldout_split): FID/KID "
                             "need at least 2 (or leave fidelity out of eval.metrics)")
    if eval_cfg.kid_subset_size < 2:
        raise PreflightError(f"eval.kid_subset_size={eval_cfg.kid_subset_size}: KID needs subsets of at least 2")


def check_images(data, metrics: set, learning_method: Optional[str]) -> None:
    """A prompt-only dataset (Wen et al.'s file without ``gt_images/``) serves guidance and detection only."""
    if len(data.adapt):
        return
    where = f"dataset '{data.name}' has no images (no gt_images/<index>/ beside its prompt file)"
    if learning_method:
        raise PreflightError(f"method={learning_method} learns from the adaptation images, but {where}")
    if "memorization" in metrics or "fidelity" in metrics:
        raise PreflightError(f"{where}: copy metrics and FID/KID need ground-truth images; run with "
                             "eval.metrics=[clip_score,detection,trigger]")


def preflight(model: ModelConfig, eval_cfg: EvalConfig, data, world_dir: Optional[Path],
              learning_method: Optional[str] = None) -> None:
    """Every check that applies to the metrics ``eval.metrics`` lists (and to a method that learns)."""
    metrics = set(eval_cfg.metrics)
    check_images(data, metrics, learning_method)
    uses_clip = bool(metrics & set(CLIP_METRICS)) or ("fidelity" in metrics and not model.inception)
    if uses_clip and world_dir is None:  # the world's own CLIP ships in its folder
        check_clip(model.clip_model)
    if "memorization" in metrics:
        check_copy_detector(model.copy_detector)
    if "fidelity" in metrics:
        check_fidelity(eval_cfg, len(data.heldout))
