"""Where the randomness of a DP release comes from.

The subsample, the Poisson batches and the noise of a release must be secret: anyone
who can recompute the noise can subtract it. :func:`mechanism_seed` therefore draws a
secret seed from the OS unless the user fixes one (reproducible benchmarking, reported as
``seeded``). :func:`stream_seed` derives independent per-purpose streams from a seed.

:func:`release_key` / :func:`release_rng` are the recommended source for a release's
noise and subsample: a 128-bit key (drawn with :mod:`secrets` unless configured) for
numpy's Philox4x64-10, a counter-based generator (Salmon et al. 2011) whose output is
a fixed function of (key, counter). 128 bits put a brute-force search for the key out
of reach, which a 63-bit seed does not quite, and the counter design gives streams for
separate purposes (noise, subsample) by key derivation without any overlap of state.
Philox is a statistically strong generator, not a cryptographic one: it protects against
guessing the seed, not against an adversary who observes many raw outputs of the same
stream (a release publishes only one noisy sum of them).
"""

from __future__ import annotations

import hashlib
import numbers
import secrets
import warnings
from typing import Any, Optional

import numpy as np

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


# Bits of a release key: Philox4x64's key is two 64-bit words.
RELEASE_KEY_BITS = 128


def release_key(configured: Optional[int], private: bool, what: str) -> tuple[int, str]:
    """``(key, "secret" | "seeded")``: a 128-bit key for :func:`release_rng`.

    ``configured=None`` draws all 128 bits from the OS (``secrets.randbits``). A
    configured integer (e.g. ``method.mechanism_seed``) is used as given, and for a
    private release warns as :func:`mechanism_seed` does: whoever knows it can recompute
    and subtract the noise.
    """
    if configured is None:
        return secrets.randbits(RELEASE_KEY_BITS), "secret"
    check_mechanism_seed(configured)
    if private:
        warnings.warn(f"method.mechanism_seed={configured} fixes {what}: anyone who knows it can remove the noise, "
                      "so the release is not DP against them; use it only for reproducible benchmarking",
                      PrivacyWarning, stacklevel=2)
    return int(configured) % (1 << RELEASE_KEY_BITS), "seeded"


def release_rng(key: int, purpose: str) -> np.random.Generator:
    """A Philox4x64-10 ``numpy.random.Generator`` for one ``purpose`` of the release keyed by ``key``.

    The Philox key is the first 128 bits of ``sha256(key, purpose)``: different purposes
    (``"noise"``, ``"subsample"``) get unrelated keys, so their outputs never coincide,
    and the same ``(key, purpose)`` always gives the same stream (counter from 0).
    """
    if isinstance(key, bool) or not isinstance(key, numbers.Integral) or not 0 <= key < (1 << RELEASE_KEY_BITS):
        raise ValueError(f"a release key must be an integer in [0, 2^{RELEASE_KEY_BITS}), got {key!r}")
    material = int(key).to_bytes(RELEASE_KEY_BITS // 8, "little") + b"/" + purpose.encode()
    digest = hashlib.sha256(material).digest()
    words = np.frombuffer(digest[:16], dtype="<u8").astype(np.uint64)
    return np.random.Generator(np.random.Philox(key=words))
