"""Solving an accountant for the smallest noise that meets a target epsilon.

:func:`solve_noise_multiplier` returns a noise multiplier together with the epsilon the
accountant certifies *for that very value*, moved a relative ``1e-9`` to the safe side
(item 14 of issue 11): a root found by a float solve can sit ``1e-13`` relative on the
wrong side of the exact privacy profile, and a value recomputed as ``sigma /
sensitivity`` can lose an ulp. The margin costs ``1e-9`` relative noise, invisible next
to any accountant's own precision, and the value is evaluated again after the move, so
``epsilon <= target`` holds exactly (no tolerance) for the returned pair.
"""

from __future__ import annotations

import math
from typing import Callable

__all__ = ["solve_noise_multiplier", "round_up_noise", "SAFETY_MARGIN"]

# A noise multiplier this large means the target cannot be met in any useful way.
_MAX_NOISE_MULTIPLIER = 1e6
# Noise multipliers are solved to this relative precision: far below the accountants'
# own slack (PRV's eps_error, PLD's discretization), so a finer solve buys nothing.
_Z_RTOL = 1e-3
# Relative move to the safe side after a solve: far above float rounding (1e-16) and
# root-finder tolerances (1e-12), far below anything that changes utility.
SAFETY_MARGIN = 1e-9


def _bracket_solve(
    epsilon_of: Callable[[float], float], target: float, start: float, start_epsilon: float | None = None
) -> tuple[float, float]:
    """Smallest-ish ``z`` with ``epsilon_of(z) <= target``; returns ``(z, epsilon_of(z))``.

    Keeps a bracket ``lo < hi`` with ``epsilon_of(lo) > target >= epsilon_of(hi)`` (values
    actually evaluated, so the returned pair is safe even where a discretized accountant
    is not perfectly monotone) and shrinks it by Illinois-modified regula falsi in
    ``log z`` until ``hi / lo < 1 + 1e-3`` or ``epsilon_of(hi)`` is within 0.1% of the
    target.
    """
    hi, e_hi = start, (epsilon_of(start) if start_epsilon is None else start_epsilon)
    lo = e_lo = None
    while not e_hi <= target:  # also catches nan
        lo, e_lo = hi, e_hi
        hi *= 2.0
        if hi > _MAX_NOISE_MULTIPLIER:
            raise ValueError(
                f"privacy.epsilon={target:g} needs a noise multiplier above {_MAX_NOISE_MULTIPLIER:g}; "
                "raise privacy.epsilon or privacy.delta"
            )
        e_hi = epsilon_of(hi)
    if lo is None:
        lo = hi / 2.0
        e_lo = epsilon_of(lo)
        while e_lo <= target:
            hi, e_hi = lo, e_lo
            lo /= 2.0
            if lo < 1e-6:  # cannot happen for a finite target; guard the loop anyway
                return hi, e_hi
            e_lo = epsilon_of(lo)

    g_lo, g_hi = e_lo - target, e_hi - target
    last_side = 0
    for _ in range(200):
        if hi / lo <= 1.0 + _Z_RTOL or target - e_hi <= 1e-3 * target:
            break
        t_lo, t_hi = math.log(lo), math.log(hi)
        if math.isfinite(g_lo) and g_lo != g_hi:
            t = t_hi - g_hi * (t_hi - t_lo) / (g_hi - g_lo)
        else:
            t = 0.5 * (t_lo + t_hi)
        # Stay strictly inside the bracket, at least a little away from its ends.
        margin = 0.01 * (t_hi - t_lo)
        t = min(max(t, t_lo + margin), t_hi - margin)
        z = math.exp(t)
        e = epsilon_of(z)
        g = e - target
        if g <= 0:
            hi, e_hi, g_hi = z, e, g
            if last_side < 0:
                g_lo *= 0.5  # Illinois step: stop the same end from sticking
            last_side = -1
        else:
            lo, g_lo = z, g
            if last_side > 0:
                g_hi *= 0.5
            last_side = 1
    return hi, e_hi


def solve_noise_multiplier(
    epsilon_of: Callable[[float], float], target: float, start: float, start_epsilon: float | None = None
) -> tuple[float, float]:
    """``(z, epsilon_of(z))`` with ``epsilon_of(z) <= target``, ``z`` within ~0.1% of minimal.

    ``epsilon_of`` is an accountant (an upper bound on epsilon, non-increasing in ``z``
    up to its discretization). The bracket's safe end is moved up by
    :data:`SAFETY_MARGIN` and evaluated again; if a non-monotone accountant answered
    above the target there, the evaluated safe end itself is returned. Either way the
    returned epsilon is the accountant's value at the returned ``z``, at or below
    ``target`` with no tolerance.
    """
    z, epsilon = _bracket_solve(epsilon_of, target, start, start_epsilon)
    moved = z * (1.0 + SAFETY_MARGIN)
    moved_epsilon = epsilon_of(moved)
    if moved_epsilon <= target:
        return moved, moved_epsilon
    return z, epsilon


def round_up_noise(noise_multiplier: float, sensitivity: float) -> float:
    """``sigma = noise_multiplier * sensitivity``, nudged up by ulps until ``sigma / sensitivity
    >= noise_multiplier`` in floats, so a multiplier recomputed from sigma never drops."""
    sigma = noise_multiplier * sensitivity
    while sigma / sensitivity < noise_multiplier:
        sigma = math.nextafter(sigma, math.inf)
    return sigma
