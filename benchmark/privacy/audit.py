"""Empirical privacy audit: a statistical lower bound on a mechanism's epsilon.

Run the mechanism many times on two neighbouring datasets ``D0`` and ``D1`` and reduce
each release to a scalar test statistic (for a Gaussian noisy mean: its projection on
the direction ``mean(D1) - mean(D0)``). Any test "release came from D1" built by
thresholding that statistic has a false-positive rate ``FPR`` (on D0 releases) and a
false-negative rate ``FNR`` (on D1 releases), and ``(epsilon, delta)``-DP forces
(Kairouz, Oh & Viswanath 2015):

    FPR + e^epsilon FNR >= 1 - delta     and     FNR + e^epsilon FPR >= 1 - delta.

So ``epsilon >= log((1 - delta - FNR) / FPR)`` (and the same with the rates swapped).
With Clopper-Pearson upper confidence bounds in place of the unknown rates this is a
lower bound that holds with the stated confidence (Jagielski et al. 2020; Nasr et al.
2021). An audited lower bound above a mechanism's claimed epsilon proves the claim (or
the implementation) wrong; one below it is only consistent with the claim.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np
from scipy import stats

__all__ = ["AuditResult", "audit_epsilon_lower_bound"]


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """Result of :func:`audit_epsilon_lower_bound`.

    ``epsilon_lower_bound`` holds with probability at least ``confidence`` (over the
    releases); ``epsilon_point`` is the same maximum with the empirical rates (biased
    upwards by the scan, no guarantee). ``threshold``/``rule``/``fpr``/``fnr`` describe
    the test that gave the lower bound (``rule`` is ``"above"`` when the test says D1
    for statistics above the threshold).
    """

    epsilon_lower_bound: float
    epsilon_point: float
    threshold: float
    rule: str
    fpr: float
    fnr: float
    num_thresholds: int
    n0: int
    n1: int
    delta: float
    confidence: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _as_sample(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of scalar statistics, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains non-finite values")
    return np.sort(array)


def _default_thresholds(pooled: np.ndarray, count: int) -> np.ndarray:
    # The informative tests sit in the tails (small FPR with moderate FNR), so quantile
    # levels are spaced geometrically towards both ends, not evenly.
    half = max(count // 2, 1)
    tail = np.geomspace(1.0 / pooled.size, 0.5, half)
    levels = np.concatenate([tail, 1.0 - tail])
    return np.unique(np.quantile(pooled, levels))


def _cp_upper(errors: np.ndarray, trials: int, alpha: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound at level ``1 - alpha`` on a binomial rate."""
    upper = np.ones_like(errors, dtype=np.float64)
    below = errors < trials
    upper[below] = stats.beta.ppf(1.0 - alpha, errors[below] + 1, trials - errors[below])
    return upper


def _epsilons(fpr: np.ndarray, fnr: np.ndarray, delta: float) -> np.ndarray:
    """max of log((1 - delta - FNR)/FPR) and log((1 - delta - FPR)/FNR), elementwise."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where((1 - delta - fnr > 0) & (fpr > 0), np.log((1 - delta - fnr) / fpr), -np.inf)
        b = np.where((1 - delta - fpr > 0) & (fnr > 0), np.log((1 - delta - fpr) / fnr), -np.inf)
    return np.maximum(a, b)


def audit_epsilon_lower_bound(
    release_d0: Sequence[float],
    release_d1: Sequence[float],
    delta: float,
    confidence: float = 0.95,
    *,
    thresholds: Optional[Sequence[float]] = None,
    num_thresholds: int = 100,
    bonferroni: bool = True,
) -> AuditResult:
    """Lower-bound the epsilon (at ``delta``) of a mechanism from its releases.

    ``release_d0`` and ``release_d1`` are i.i.d. scalar statistics of independent runs
    on two neighbouring datasets. Every threshold (given, or ``num_thresholds`` pooled
    quantiles, denser in the tails) is tried with both rules ("D1 if above", "D1 if
    below"); each gives Clopper-Pearson upper bounds ``FPR_hi`` and ``FNR_hi`` and the
    bound ``max(log((1 - delta - FNR_hi) / FPR_hi), log((1 - delta - FPR_hi) / FNR_hi))``.
    The best one is returned, clipped at 0.

    Guarantee: if the mechanism is ``(epsilon, delta)``-DP then
    ``epsilon >= epsilon_lower_bound`` with probability at least ``confidence``. With
    ``bonferroni=True`` (default) the confidence is split over all the rates the scan
    bounds, so the statement covers the maximum over the scan (the default thresholds
    are read off the pooled data, a mild dependence that auditing practice accepts);
    ``bonferroni=False`` gives the per-test bound of the literature, which is tighter
    but holds only for a threshold fixed in advance.
    """
    s0 = _as_sample(release_d0, "release_d0")
    s1 = _as_sample(release_d1, "release_d1")
    delta = float(delta)
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if thresholds is None:
        if num_thresholds < 1:
            raise ValueError(f"num_thresholds must be >= 1, got {num_thresholds!r}")
        grid = _default_thresholds(np.concatenate([s0, s1]), num_thresholds)
    else:
        grid = np.unique(np.asarray(thresholds, dtype=np.float64).ravel())
        if grid.size == 0 or not np.all(np.isfinite(grid)):
            raise ValueError("thresholds must be a non-empty list of finite numbers")
    n0, n1 = s0.size, s1.size

    # Error counts of the two rules at every threshold; searchsorted on sorted samples.
    le0 = np.searchsorted(s0, grid, side="right")  # D0 releases <= t
    le1 = np.searchsorted(s1, grid, side="right")
    lt0 = np.searchsorted(s0, grid, side="left")  # D0 releases < t
    lt1 = np.searchsorted(s1, grid, side="left")
    rules = {
        "above": (n0 - le0, le1),  # say D1 when s > t: FP = D0 above t, FN = D1 at or below t
        "below": (lt0, n1 - lt1),  # say D1 when s < t: FP = D0 below t, FN = D1 at or above t
    }

    alpha = 1.0 - confidence
    if bonferroni:
        # Four rates per threshold (FPR and FNR for two rules), each bounded one-sidedly.
        alpha /= 4 * grid.size

    best = dict(lb=-math.inf, point=-math.inf, threshold=float("nan"), rule="above", fpr=1.0, fnr=1.0)
    for rule, (fp, fn) in rules.items():
        lower = _epsilons(_cp_upper(fp, n0, alpha), _cp_upper(fn, n1, alpha), delta)
        # Point estimate: plain rates. A zero rate in a denominator would make it
        # unbounded, so _epsilons leaves those tests out (they stay in the bound above).
        point = _epsilons(fp / n0, fn / n1, delta)
        best["point"] = max(best["point"], float(point.max()))
        i = int(np.argmax(lower))
        if lower[i] > best["lb"]:
            best.update(lb=float(lower[i]), threshold=float(grid[i]), rule=rule,
                        fpr=float(fp[i] / n0), fnr=float(fn[i] / n1))
    return AuditResult(
        epsilon_lower_bound=max(0.0, best["lb"]),
        epsilon_point=max(0.0, best["point"]),
        threshold=best["threshold"],
        rule=best["rule"],
        fpr=best["fpr"],
        fnr=best["fnr"],
        num_thresholds=int(grid.size),
        n0=n0,
        n1=n1,
        delta=delta,
        confidence=float(confidence),
    )
