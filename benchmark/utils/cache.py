"""Where the suite keeps what it builds or trains once, and the secret that keys its hashes.

Worlds, per-image embeddings and dataset copies live below :func:`cache_root`. Anything
there that is derived from private data is owner-only (:func:`private_dir`).

**Keyed hashes.** A plain hash of a private dataset, published next to a result, lets
anyone holding two candidate datasets tell which one was used (formally, infinite
epsilon). The suite therefore identifies datasets (resume, the embedding cache) with
:func:`keyed_digest`, an HMAC-SHA256 under a random 256-bit key created once in the
owner-only cache (``secret.key``) and never written anywhere else. Without the key a
digest is indistinguishable from random whatever the dataset; with it (the same
machine or cache) equal inputs give equal digests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Iterable

SECRET_FILE = "secret.key"


def cache_root() -> Path:
    """``$BENCHMARK_CACHE``, else ``~/.cache/dp-diffusion-bench``."""
    return Path(os.environ.get("BENCHMARK_CACHE", Path.home() / ".cache" / "dp-diffusion-bench"))


def private_dir(directory: Path) -> Path:
    """``directory``, created if needed and readable by its owner alone (``0o700``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask, and the folder may pre-exist
    return directory


def secret_key() -> bytes:
    """The cache's 32-byte HMAC key, created (``0o600``, atomically) on first use."""
    path = private_dir(cache_root()) / SECRET_FILE
    if not path.is_file():
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)  # fails if another process created it first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_bytes()
    if len(key) != 32:
        raise RuntimeError(f"{path} is not a 32-byte key; delete it to create a new one")
    return key


def keyed_digest(parts: Iterable[bytes], length: int = 16) -> str:
    """``length`` hex digits of HMAC-SHA256 over ``parts`` under :func:`secret_key`."""
    mac = hmac.new(secret_key(), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.hexdigest()[:length]
