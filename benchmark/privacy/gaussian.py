"""The analytic Gaussian mechanism (Balle & Wang, ICML 2018).

Releasing ``f(D) + N(0, sigma^2 I)`` for a function ``f`` whose L2 sensitivity over
neighbouring datasets is ``sensitivity`` is ``(epsilon, delta)``-DP exactly when
``delta >= gaussian_delta(epsilon, sigma, sensitivity)``. This privacy profile is tight
(it is the hockey-stick divergence between ``N(0, sigma^2)`` and
``N(sensitivity, sigma^2)``), so calibrating to it gives the smallest noise that meets a
target, unlike the classical ``sigma = sqrt(2 ln(1.25/delta)) sensitivity / epsilon``,
which is loose and only valid for ``epsilon < 1``.

All three functions depend on ``sigma`` and ``sensitivity`` only through their ratio
``sigma / sensitivity`` (the noise multiplier), which is what the root finders solve for.
"""

from __future__ import annotations

import math

from scipy import optimize, special

from .validation import check_delta, check_epsilon

__all__ = ["gaussian_delta", "calibrate_gaussian_sigma", "gaussian_epsilon"]

# Root finding runs on log(noise multiplier) / epsilon far below the 1e-6 relative
# tolerance promised to callers; the answer is then moved to the safe side explicitly.
_XTOL = 1e-12
_RTOL = 1e-12
# After the solve sigma is moved this far (relative) to the safe side, then verified:
# float evaluations of the profile are accurate to ~1e-13 relative, so a root placed
# exactly on the target could sit on the wrong side of the exact profile (issue 11,
# item 14). 1e-9 more noise is invisible in utility.
_SAFETY_MARGIN = 1e-9
# Brackets never need to leave this range for any delta representable in a float64.
_MAX_BRACKET_STEPS = 200


def _check_nonneg(value: float, name: str, allow_inf: bool = False) -> float:
    number = float(value)
    if math.isnan(number) or number < 0 or (math.isinf(number) and not allow_inf):
        raise ValueError(f"{name} must be >= 0{' (or inf)' if allow_inf else ''}, got {value!r}")
    return number


def _check_positive(value: float, name: str, allow_inf: bool = False) -> float:
    number = _check_nonneg(value, name, allow_inf)
    if number == 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def _log_delta(epsilon: float, multiplier: float) -> float:
    """log of the privacy profile for noise multiplier ``multiplier = sigma / sensitivity``.

    delta = Phi(a) - e^eps Phi(b) with a = 1/(2z) - eps z and b = -1/(2z) - eps z. Both
    terms are computed in log space (``log_ndtr`` is accurate deep in the tails) and
    subtracted as ``exp(la) * (1 - exp(lb - la))`` so that a large ``e^eps`` never
    overflows and the difference of two tiny numbers keeps its relative precision.
    """
    if multiplier == 0:
        return 0.0  # no noise: the two outputs are disjoint, delta = 1 for every epsilon
    if math.isinf(epsilon):
        return -math.inf
    a = 1.0 / (2.0 * multiplier) - epsilon * multiplier
    b = -1.0 / (2.0 * multiplier) - epsilon * multiplier
    la = float(special.log_ndtr(a))
    lb = epsilon + float(special.log_ndtr(b))
    if lb >= la:  # only possible through rounding: the true profile is positive
        return -math.inf
    return la + math.log(-math.expm1(lb - la))


def gaussian_delta(epsilon: float, sigma: float, sensitivity: float) -> float:
    """The exact privacy profile ``delta(epsilon)`` of the Gaussian mechanism.

    Adding ``N(0, sigma^2 I)`` to a function of L2 sensitivity ``sensitivity`` is
    ``(epsilon, delta)``-differentially private for every ``delta`` at or above the
    returned value and for no smaller one (Balle & Wang 2018, Theorem 8):
    ``Phi(D/(2s) - eps s/D) - e^eps Phi(-D/(2s) - eps s/D)``.

    Args:
        epsilon: ``>= 0`` (``inf`` gives 0).
        sigma: standard deviation of the noise, ``>= 0`` (0 gives delta = 1).
        sensitivity: L2 sensitivity, ``> 0``, in the same units as ``sigma``.
    """
    epsilon = _check_nonneg(epsilon, "epsilon", allow_inf=True)
    sigma = _check_nonneg(sigma, "sigma")
    sensitivity = _check_positive(sensitivity, "sensitivity")
    return min(1.0, max(0.0, math.exp(_log_delta(epsilon, sigma / sensitivity))))


def calibrate_gaussian_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
    """The smallest noise std that makes the Gaussian mechanism ``(epsilon, delta)``-DP.

    Returns ``sigma`` with ``gaussian_delta(epsilon, sigma, sensitivity) <= delta`` that is
    within a relative ``1e-6`` (in practice ``1e-9``) of the exact minimum; it is rounded
    up by a relative ``1e-9`` after the solve, never down, so the exact privacy profile
    (not only its float evaluation) meets the target. ``epsilon = inf`` returns 0 (no
    noise, no privacy).
    """
    epsilon = check_epsilon(epsilon)
    delta = check_delta(delta)
    sensitivity = _check_positive(sensitivity, "sensitivity")
    if math.isinf(epsilon):
        return 0.0
    log_target = math.log(delta)

    # delta(z) falls strictly from 1 (z -> 0) to 0 (z -> inf): solve in t = log z, where
    # the profile is smooth and a doubling bracket needs few steps in either direction.
    def excess(t: float) -> float:
        return _log_delta(epsilon, math.exp(t)) - log_target

    lo, hi = -1.0, 1.0
    for _ in range(_MAX_BRACKET_STEPS):
        if excess(lo) > 0:
            break
        lo -= 2.0
    for _ in range(_MAX_BRACKET_STEPS):
        if excess(hi) <= 0:
            break
        hi += 2.0
    t = optimize.brentq(excess, lo, hi, xtol=_XTOL, rtol=_RTOL)
    sigma = math.exp(t) * sensitivity * (1.0 + _SAFETY_MARGIN)
    # Verify (and keep rounding up if ever needed): brentq's root may sit a hair on the
    # wrong side, and so may sigma once multiplied back into release units.
    for _ in range(_MAX_BRACKET_STEPS):
        if gaussian_delta(epsilon, sigma, sensitivity) <= delta:
            return sigma
        sigma *= 1 + 1e-12
    raise RuntimeError(f"could not round sigma up to meet delta={delta} at epsilon={epsilon}")


def gaussian_epsilon(sigma: float, delta: float, sensitivity: float) -> float:
    """The smallest epsilon for which the Gaussian mechanism is ``(epsilon, delta)``-DP.

    Inverts :func:`gaussian_delta` in epsilon: the returned value satisfies
    ``gaussian_delta(epsilon, sigma, sensitivity) <= delta`` and exceeds the exact
    minimum by a relative ~1e-9 (rounded up, never down, so that the exact profile holds
    too). ``sigma = 0`` gives
    ``inf``; a noise so large that even ``epsilon = 0`` meets ``delta`` gives 0.
    """
    sigma = _check_nonneg(sigma, "sigma")
    delta = check_delta(delta)
    sensitivity = _check_positive(sensitivity, "sensitivity")
    if sigma == 0:
        return math.inf
    multiplier = sigma / sensitivity
    log_target = math.log(delta)

    def excess(eps: float) -> float:
        return _log_delta(eps, multiplier) - log_target

    if excess(0.0) <= 0:
        return 0.0
    hi = 1.0
    for _ in range(_MAX_BRACKET_STEPS):
        if excess(hi) <= 0:
            break
        hi *= 2.0
    # Moved up like sigma in calibrate_gaussian_sigma: the reported epsilon must hold for
    # the exact profile, not only for its float evaluation.
    epsilon = optimize.brentq(excess, 0.0, hi, xtol=_XTOL, rtol=_RTOL) * (1.0 + _SAFETY_MARGIN)
    for _ in range(_MAX_BRACKET_STEPS):
        # Verified in both forms: the log-space excess and the delta callers compare
        # (exp(log delta) can differ from delta by an ulp).
        if excess(epsilon) <= 0 and gaussian_delta(epsilon, sigma, sensitivity) <= delta:
            return epsilon
        epsilon = epsilon * (1 + 1e-12) + 1e-300
    raise RuntimeError(f"could not round epsilon up to meet delta={delta} at sigma={sigma}")
