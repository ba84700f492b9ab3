"""Checks of hyperparameter values shared by every method family."""

from __future__ import annotations

import math
import numbers

from benchmark.config import ConfigError


def check_positive(value, key: str, integer: bool = False, why: str = ""):
    """A method hyperparameter that must be finite and > 0 (an integer when ``integer``).

    Raises ``ConfigError`` naming ``key`` (``why`` is appended to the message); returns
    the value as an int or float.
    """
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not (0 < value < math.inf):
        raise ConfigError(f"{key} must be a {'positive integer' if integer else 'finite number > 0'}{why}, "
                          f"got {value!r}")
    return int(value) if integer else float(value)
