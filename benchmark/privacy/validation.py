"""Input checks for the privacy code; every message names the config key at fault.

Values may come straight from a Hydra config, so numbers given as strings (``"inf"``,
``epsilon=1`` read as an int) are accepted wherever ``float()`` accepts them.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Optional

from benchmark.config import ConfigError

__all__ = [
    "PrivacyWarning",
    "check_epsilon",
    "check_delta",
    "check_delta_vs_n",
    "check_radius",
    "check_subsample",
    "check_sample_rate",
    "check_steps",
    "check_noise_multiplier",
    "check_public_divisor",
]


class PrivacyWarning(UserWarning):
    """A setting is legal but gives a weak or surprising privacy guarantee."""


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool):  # float(True) == 1.0 would pass silently
        raise ValueError(f"{key} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None


def check_epsilon(epsilon: Any, key: str = "privacy.epsilon") -> float:
    """A positive epsilon, or ``inf`` (no privacy). Raises ``ValueError`` naming ``key``."""
    number = _number(epsilon, key)
    if math.isnan(number) or number <= 0:
        raise ValueError(f"{key} must be > 0 (or inf for no privacy), got {epsilon!r}")
    return number


def check_delta(delta: Any, key: str = "privacy.delta") -> float:
    """A delta strictly between 0 and 1. Raises ``ValueError`` naming ``key``."""
    number = _number(delta, key)
    if not 0 < number < 1:  # also rejects nan
        raise ValueError(f"{key} must be in (0, 1), got {delta!r}")
    return number


def check_radius(radius: Any, key: str = "method.clip_radius") -> float:
    """A finite positive clipping radius. Raises ``ValueError`` naming ``key``."""
    number = _number(radius, key)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"{key} must be a finite number > 0, got {radius!r}")
    return number


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{key} must be an integer, got {value!r}")
    return int(value)


def check_subsample(m: Any, n: Any) -> tuple[int, int]:
    """``2 <= n`` private records and a subsample size ``1 <= m <= n``."""
    n = _integer(n, "the number of private images n")
    if n < 2:
        raise ValueError(
            f"the private set has n={n} image(s); a private mean needs at least 2 "
            "(with one record the release is that record's own noisy embedding)"
        )
    m = _integer(m, "method.subsample_size")
    if not 1 <= m <= n:
        raise ValueError(
            f"method.subsample_size must be between 1 and the number of private images: "
            f"got m={m} with n={n}"
        )
    return m, n


def check_sample_rate(sample_rate: Any, key: str = "sample_rate") -> float:
    """A sampling probability in (0, 1]."""
    number = _number(sample_rate, key)
    if not 0 < number <= 1:
        raise ValueError(f"{key} must be in (0, 1], got {sample_rate!r}")
    return number


def check_steps(steps: Any, key: str = "steps") -> int:
    """A positive number of noisy steps."""
    number = _integer(steps, key)
    if number < 1:
        raise ValueError(f"{key} must be >= 1, got {steps!r}")
    return number


def check_noise_multiplier(noise_multiplier: Any, key: str = "noise_multiplier") -> float:
    """A finite noise multiplier ``>= 0`` (0 means no noise)."""
    number = _number(noise_multiplier, key)
    if not (number >= 0 and math.isfinite(number)):
        raise ValueError(f"{key} must be a finite number >= 0, got {noise_multiplier!r}")
    return number


def check_delta_vs_n(delta: float, n: int) -> Optional[str]:
    """Warn (``PrivacyWarning``) and return the message when ``delta >= 1/n``.

    ``(epsilon, delta)``-DP allows a mechanism that publishes one randomly chosen record
    in the clear with probability ``delta`` per record; with ``delta >= 1/n`` such a
    mechanism may expect to publish a whole private image, so the guarantee is void
    in practice. The usual choice is ``delta << 1/n``. Returns ``None`` when fine.
    """
    delta = check_delta(delta)
    if delta * n >= 1:
        message = (
            f"privacy.delta={delta:g} is >= 1/n = 1/{n}: an (epsilon, delta)-DP mechanism may "
            f"release a whole private record in the clear with probability delta each, i.e. "
            f"about {delta * n:g} of the {n} records; choose delta well below 1/n"
        )
        warnings.warn(message, PrivacyWarning, stacklevel=2)
        return message
    return None


def check_public_divisor(neighbouring: str, subsample_size: Any, sample_rate: Any = None) -> None:
    """Refuse an add/remove release whose divisor would be the private ``n``.

    Under add/remove neighbours the neighbour of an ``n``-record dataset has ``n + 1``
    records. A mean divided by the actual count then changes *every* summand's weight
    with the data, and noise calibrated to ``R/n`` covers none of it (at a claimed
    epsilon 1, delta 1e-5, n 32 the true epsilon is about 3.1 in 64 dimensions and 6.6
    in 768). The ``R/m`` sensitivity of :func:`~benchmark.privacy.sensitivity_of_mean`
    holds only for a sum divided by a *public* ``m`` (``method.subsample_size``), with
    records kept by Poisson sampling at a public rate. Replace-one neighbours keep ``n``
    fixed, so ``subsample_size = None`` (``m = n``) is fine there.

    Raises ``ConfigError`` naming ``method.subsample_size`` when ``neighbouring`` is
    ``add_remove`` and neither a public ``subsample_size`` nor a public ``sample_rate``
    is given.
    """
    if neighbouring != "add_remove" or subsample_size is not None or sample_rate is not None:
        return
    raise ConfigError(
        "method.neighbouring=add_remove needs a public divisor: set method.subsample_size to a "
        "public number of records m (the release is the sum of a Poisson sample divided by m), "
        "or give a public sampling rate q. Without it the mean is divided by the private number "
        "of images n, which differs between neighbouring datasets (n vs n+1), so the noise "
        "calibrated to R/n does not bound the change; or use method.neighbouring=replace_one"
    )
