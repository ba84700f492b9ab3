"""Where the randomness of a DP release comes from.

The subsample, the Poisson batches and the noise of a release must be secret: anyone
who can recompute the noise can subtract it. :func:`mechanism_seed` therefore draws a
secret seed from the OS unless the user fixes one (reproducible benchmarking, reported as
``seeded``). :func:`stream_seed` derives independent per-purpose streams from a seed.
"""

from __future__ import annotations

import hashlib
import numbers
import secrets
import warnings
from typing import Any, Optional

from benchmark.config import ConfigError
from benchmark.privacy.validation import PrivacyWarning


def stream_seed(*parts: Any) -> int:
    """A 63-bit seed for the stream named by ``parts`` (e.g. ``"dpagg-ti", seed, image, step``).

    A hash, not ``seed + i``: streams of different parts must not overlap.
    """
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def check_mechanism_seed(value: Any, key: str = "method.mechanism_seed") -> None:
    """``None`` (secret randomness) or an integer; ``ConfigError`` naming ``key`` otherwise."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise ConfigError(f"{key} must be an integer or null, got {value!r}")


def mechanism_seed(configured: Optional[int], private: bool, what: str) -> tuple[int, str]:
    """``(seed, "secret" | "seeded")`` for the random choices of a release.

    ``configured=None`` draws the seed from the OS (``secrets``). A configured seed makes
    the run reproducible; for a private release it warns that ``what`` (e.g. "the
    subsample and the noise") is then recomputable by whoever knows the seed.
    """
    if configured is None:
        return secrets.randbits(63), "secret"
    if private:
        warnings.warn(f"method.mechanism_seed={configured} fixes {what}: anyone who knows it can remove the noise, "
                      "so the release is not DP against them; use it only for reproducible benchmarking",
                      PrivacyWarning, stacklevel=3)
    return int(configured), "seeded"
