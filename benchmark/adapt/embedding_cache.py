"""On-disk cache of DPAgg-TI's per-image embeddings, so an epsilon sweep trains them once.

The per-image embeddings are **private data** (one per person's image, with no noise):
they are kept only here, in a directory readable by its owner alone (``0o700``, files
``0o600``), written atomically, and never logged, uploaded or copied to a run directory.
The cache key is derived from the dataset's *keyed* hash (the secret stays in the
owner-only cache, :mod:`benchmark.utils.cache`) and is never logged either.

The key covers everything the embeddings depend on: the model's identity (where it was
loaded from, plus a hash of its weights or of the checksums in the world's
``world.json``), the dataset's keyed content hash, the TI hyperparameters, templates,
initializer and seed (see :func:`cache_key`). Settings that change only the order of
floating-point sums (how many images share a forward pass) are left out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from benchmark.utils.cache import cache_root, private_dir
from benchmark.models.backbone import Backbone

log = logging.getLogger(__name__)

# Bump when the per-image training changes what it computes: old entries then miss.
CACHE_FORMAT = "dpagg-ti-per-image-v1"
_TENSOR = "embeddings"


def default_cache_dir() -> Path:
    """``<BENCHMARK_CACHE or ~/.cache/dp-diffusion-bench>/embeddings``."""
    return cache_root() / "embeddings"


def _hash_tensors(h, module: torch.nn.Module) -> None:
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes of any dtype


def model_identity(backbone: Backbone) -> dict:
    """Where the backbone came from and a hash of what per-image TI depends on.

    For the offline world the checksums in ``world.json`` identify every file; for any
    other model the text encoder, UNet and VAE weights, the tokenizer's vocabulary and
    the noise schedule are hashed as loaded. Call before placeholder tokens are added.
    """
    h = hashlib.sha256()
    world_json = Path(backbone.world_dir) / "world.json" if backbone.world_dir else None
    if world_json is not None and world_json.is_file():
        meta = json.loads(world_json.read_text())
        h.update(json.dumps({"recipe": meta.get("recipe_version"), "checksums": meta.get("checksums")},
                            sort_keys=True).encode())
        kind = "world.json"
    else:
        for module in (backbone.text_encoder, backbone.unet, backbone.vae):
            _hash_tensors(h, module)
        h.update(json.dumps(sorted(backbone.tokenizer.get_vocab().items())).encode())
        h.update(json.dumps(dict(backbone.scheduler.config), sort_keys=True, default=str).encode())
        kind = "weights"
    return {"source": str(backbone.source), "hash_of": kind, "hash": h.hexdigest(),
            "dtype": str(next(backbone.unet.parameters()).dtype)}


def cache_key(material: dict) -> str:
    """Hash of the key material (JSON with sorted keys): equal material, equal key."""
    payload = json.dumps({"format": CACHE_FORMAT, **material}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class EmbeddingCache:
    """Per-image embeddings stored as ``<directory>/<key>.safetensors`` (owner-only)."""

    def __init__(self, directory: Optional[str | Path] = None):
        self.directory = Path(os.path.expanduser(str(directory))) if directory else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def load(self, key: str, shape: Optional[tuple[int, ...]] = None) -> Optional[torch.Tensor]:
        """The cached embeddings for ``key``, or ``None`` (missing, unreadable or wrong shape)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            data = path.read_bytes()
            tensor = load_safetensors(data)[_TENSOR]
        except (OSError, SafetensorError, KeyError) as err:
            log.warning("per-image embedding cache entry %s is unreadable (%s); retraining", key, type(err).__name__)
            return None
        if shape is not None and tuple(tensor.shape) != tuple(shape):
            log.warning("per-image embedding cache entry %s has shape %s, expected %s; retraining",
                        key, tuple(tensor.shape), tuple(shape))
            return None
        return tensor

    def save(self, key: str, embeddings: torch.Tensor, metadata: Optional[dict] = None) -> Path:
        """Write atomically (temporary file, fsync, rename) with mode ``0o600``."""
        directory = private_dir(self.directory)
        meta = {"format": CACHE_FORMAT, "key": key}
        for name, value in (metadata or {}).items():  # safetensors metadata is str -> str
            meta[name] = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        data = save_safetensors({_TENSOR: embeddings.detach().cpu().float().contiguous()}, metadata=meta)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".tmp")  # created 0o600
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path(key)
