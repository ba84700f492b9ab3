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
2021), *provided the test is fixed before the samples it is evaluated on are seen*.
Here the threshold is chosen on one part of the releases and the bound computed on the
other (:func:`audit_epsilon_lower_bound`, :func:`audit_sampler`), or thresholds fixed in
advance are all bounded at once (Bonferroni). An audited lower bound above a
mechanism's claimed epsilon proves the claim (or the implementation) wrong; one below
it is only consistent with the claim.

A bound from ``N`` evaluation releases per dataset can never exceed
:func:`audit_ceiling` (``~ log(N / log(2/alpha))``: zero errors observed): size ``N``
with :func:`releases_for_ceiling` so that the ceiling is well above the epsilon tested.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Sequence

import numpy as np
from scipy import stats

__all__ = ["AuditResult", "audit_epsilon_lower_bound", "audit_sampler", "audit_ceiling", "releases_for_ceiling"]

# Rates bounded for the one test chosen on the selection part: FPR and FNR.
_RATES_PER_TEST = 2


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """Result of an audit.

    ``epsilon_lower_bound`` holds with probability at least ``confidence`` (over the
    releases); ``epsilon_point`` is the same expression with the plain evaluation rates
    (no guarantee). ``threshold``/``rule``/``fpr``/``fnr`` describe the test that gave
    the bound (``rule`` is ``"above"`` when the test says D1 for statistics above the
    threshold; rates on the evaluation releases). ``n0``/``n1`` count the evaluation
    releases, ``ceiling`` is the largest bound they could give, and ``selection`` says
    how the test was chosen: ``"split"`` (on separate releases) or ``"fixed"``
    (thresholds given in advance, Bonferroni over all of them).
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
    ceiling: float
    selection: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _as_sample(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of scalar statistics, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains non-finite values")
    return array


def _check(delta: float, confidence: float) -> tuple[float, float]:
    delta = float(delta)
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return delta, float(confidence)


def _default_thresholds(pooled: np.ndarray, count: int) -> np.ndarray:
    # The informative tests sit in the tails (small FPR with moderate FNR), so quantile
    # levels are spaced geometrically towards both ends, not evenly.
    half = max(count // 2, 1)
    tail = np.geomspace(1.0 / pooled.size, 0.5, half)
    levels = np.concatenate([tail, 1.0 - tail])
    grid = np.unique(np.quantile(pooled, levels))
    # Midpoints too: a quantile is a sample value, and a threshold on a sample's edge
    # errs on fresh releases where one in the gap beside it would not.
    return np.unique(np.concatenate([grid, 0.5 * (grid[1:] + grid[:-1])]))


def clopper_pearson_upper(errors, trials: int, alpha: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound at level ``1 - alpha`` on a binomial rate, per count in ``errors``.

    The bound holds with probability at least ``1 - alpha`` for every true rate (exact, not
    asymptotic); ``errors == trials`` gives 1.
    """
    errors = np.asarray(errors, dtype=np.float64)
    upper = np.ones_like(errors)
    below = errors < trials
    upper[below] = stats.beta.ppf(1.0 - alpha, errors[below] + 1, trials - errors[below])
    return upper


def _epsilons(fpr, fnr, delta: float) -> np.ndarray:
    """max of log((1 - delta - FNR)/FPR) and log((1 - delta - FPR)/FNR), elementwise."""
    fpr, fnr = np.asarray(fpr, dtype=np.float64), np.asarray(fnr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where((1 - delta - fnr > 0) & (fpr > 0), np.log((1 - delta - fnr) / fpr), -np.inf)
        b = np.where((1 - delta - fpr > 0) & (fnr > 0), np.log((1 - delta - fpr) / fnr), -np.inf)
    return np.maximum(a, b)


def audit_ceiling(releases: int, delta: float, confidence: float = 0.95) -> float:
    """The largest lower bound a split audit with ``releases`` evaluation releases per
    dataset can return (no error observed on either side)."""
    delta, confidence = _check(delta, confidence)
    upper = clopper_pearson_upper([0], int(releases), (1.0 - confidence) / _RATES_PER_TEST)
    return float(_epsilons(upper, upper, delta)[0])


def releases_for_ceiling(epsilon: float, delta: float, confidence: float = 0.95) -> int:
    """Smallest number of evaluation releases per dataset whose :func:`audit_ceiling`
    is at least ``epsilon``."""
    delta, confidence = _check(delta, confidence)
    alpha = (1.0 - confidence) / _RATES_PER_TEST
    # Zero errors: upper bound u = 1 - alpha^(1/N); the ceiling log((1-delta-u)/u) >= eps
    # needs u <= (1 - delta) / (1 + e^eps).
    u = (1.0 - delta) / (1.0 + math.exp(epsilon))
    count = max(1, math.ceil(math.log(alpha) / math.log1p(-u)))
    while audit_ceiling(count, delta, confidence) < epsilon:  # guard the float algebra
        count += max(1, count // 1000)
    return count


def _error_counts(s0: np.ndarray, s1: np.ndarray, grid: np.ndarray) -> dict:
    """False positives and negatives of both rules at every threshold (sorted samples)."""
    n0, n1 = s0.size, s1.size
    le0, le1 = np.searchsorted(s0, grid, side="right"), np.searchsorted(s1, grid, side="right")
    lt0, lt1 = np.searchsorted(s0, grid, side="left"), np.searchsorted(s1, grid, side="left")
    return {
        "above": (n0 - le0, le1),  # say D1 when s > t: FP = D0 above t, FN = D1 at or below t
        "below": (lt0, n1 - lt1),  # say D1 when s < t: FP = D0 below t, FN = D1 at or above t
    }


def _select(s0: np.ndarray, s1: np.ndarray, grid: np.ndarray, delta: float, alpha: float):
    """The (threshold, rule) with the best Clopper-Pearson bound on these samples.

    Scored at the Bonferroni level over the whole scan: the plain per-test level would
    favour far-tail thresholds whose few selection errors were lucky (the winner's
    curse), which then bound poorly on the evaluation releases.
    """
    alpha = alpha / (4 * grid.size)
    best = (-math.inf, float(grid[0]), "above")
    for rule, (fp, fn) in _error_counts(np.sort(s0), np.sort(s1), grid).items():
        lower = _epsilons(clopper_pearson_upper(fp, s0.size, alpha), clopper_pearson_upper(fn, s1.size, alpha), delta)
        top = float(np.max(lower))
        if top > best[0]:
            # Among equally good thresholds take the middle one: farthest from both
            # samples' edges, so the least likely to err on the evaluation releases.
            ties = np.flatnonzero(lower >= top - 1e-12 * max(1.0, abs(top)))
            best = (top, float(grid[ties[len(ties) // 2]]), rule)
    return best[1], best[2]


def _bound(fp: int, fn: int, n0: int, n1: int, delta: float, alpha: float) -> tuple[float, float]:
    lower = _epsilons(clopper_pearson_upper([fp], n0, alpha), clopper_pearson_upper([fn], n1, alpha), delta)[0]
    point = _epsilons([fp / n0], [fn / n1], delta)[0]
    return max(0.0, float(lower)), max(0.0, float(point))


def _result(threshold, rule, fp, fn, n0, n1, delta, confidence, grid_size, selection, alpha) -> AuditResult:
    lower, point = _bound(fp, fn, n0, n1, delta, alpha)
    ceiling = float(_epsilons(clopper_pearson_upper([0], n0, alpha), clopper_pearson_upper([0], n1, alpha), delta)[0])
    return AuditResult(epsilon_lower_bound=lower, epsilon_point=point, threshold=float(threshold), rule=rule,
                       fpr=fp / n0, fnr=fn / n1, num_thresholds=int(grid_size), n0=n0, n1=n1, delta=delta,
                       confidence=confidence, ceiling=max(0.0, ceiling), selection=selection)


def audit_epsilon_lower_bound(
    release_d0: Sequence[float],
    release_d1: Sequence[float],
    delta: float,
    confidence: float = 0.95,
    *,
    thresholds: Optional[Sequence[float]] = None,
    num_thresholds: int = 100,
    selection_fraction: float = 0.5,
    seed: int = 0,
) -> AuditResult:
    """Lower-bound the epsilon (at ``delta``) of a mechanism from its releases.

    ``release_d0`` and ``release_d1`` are i.i.d. scalar statistics of independent runs
    on two neighbouring datasets.

    * ``thresholds=None`` (default): each sample is split at random (``seed``, which
      does not look at the data) into a selection part (``selection_fraction``) and an
      evaluation part. The threshold and rule are chosen on the selection part (the best
      Clopper-Pearson bound over ``num_thresholds`` pooled quantiles, denser in the
      tails); the bound is computed on the evaluation part alone, for that one test.
    * ``thresholds`` given: fixed in advance; every threshold and both rules are bounded
      on all the releases, with the confidence split (Bonferroni) over the ``4 *
      len(thresholds)`` rates.

    Guarantee: if the mechanism is ``(epsilon, delta)``-DP then
    ``epsilon >= epsilon_lower_bound`` with probability at least ``confidence``.
    """
    s0, s1 = _as_sample(release_d0, "release_d0"), _as_sample(release_d1, "release_d1")
    delta, confidence = _check(delta, confidence)
    alpha = 1.0 - confidence
    if thresholds is not None:
        grid = np.unique(np.asarray(thresholds, dtype=np.float64).ravel())
        if grid.size == 0 or not np.all(np.isfinite(grid)):
            raise ValueError("thresholds must be a non-empty list of finite numbers")
        alpha /= 4 * grid.size  # FPR and FNR of two rules at every threshold
        best = None
        for rule, (fp, fn) in _error_counts(np.sort(s0), np.sort(s1), grid).items():
            lower = _epsilons(clopper_pearson_upper(fp, s0.size, alpha), clopper_pearson_upper(fn, s1.size, alpha), delta)
            i = int(np.argmax(lower))
            if best is None or lower[i] > best[0]:
                best = (lower[i], grid[i], rule, int(fp[i]), int(fn[i]))
        _, t, rule, fp, fn = best
        return _result(t, rule, fp, fn, s0.size, s1.size, delta, confidence, grid.size, "fixed", alpha)

    if num_thresholds < 1:
        raise ValueError(f"num_thresholds must be >= 1, got {num_thresholds!r}")
    if not 0 < selection_fraction < 1:
        raise ValueError(f"selection_fraction must be in (0, 1), got {selection_fraction!r}")
    if min(s0.size, s1.size) < 4:
        raise ValueError("a split audit needs at least 4 releases per dataset")
    parts = []
    for sample in (s0, s1):
        # Seeded by (seed, size) only: the split ignores the data and which side it is on.
        shuffled = sample[np.random.default_rng([seed, sample.size]).permutation(sample.size)]
        cut = min(max(1, int(round(selection_fraction * sample.size))), sample.size - 1)
        parts.append((shuffled[:cut], shuffled[cut:]))
    (sel0, ev0), (sel1, ev1) = parts
    grid = _default_thresholds(np.concatenate([sel0, sel1]), num_thresholds)
    t, rule = _select(sel0, sel1, grid, delta, alpha)
    fp, fn = _test_errors(ev0, ev1, t, rule)
    return _result(t, rule, fp, fn, ev0.size, ev1.size, delta, confidence, grid.size, "split",
                   alpha / _RATES_PER_TEST)


def _test_errors(s0: np.ndarray, s1: np.ndarray, threshold: float, rule: str) -> tuple[int, int]:
    if rule == "above":
        return int(np.count_nonzero(s0 > threshold)), int(np.count_nonzero(s1 <= threshold))
    return int(np.count_nonzero(s0 < threshold)), int(np.count_nonzero(s1 >= threshold))


def audit_sampler(
    draw: Callable[[int, np.random.Generator, int], np.ndarray],
    releases: int,
    delta: float,
    confidence: float = 0.95,
    *,
    selection_releases: Optional[int] = None,
    seed: int = 0,
    num_thresholds: int = 200,
    chunk: int = 1 << 21,
) -> AuditResult:
    """Split audit of a mechanism given as a sampler, with evaluation releases streamed.

    ``draw(dataset, rng, count)`` returns ``count`` i.i.d. statistics of independent
    releases on dataset ``0`` or ``1``. ``selection_releases`` per dataset (default
    ``releases``) choose the test as in :func:`audit_epsilon_lower_bound`; then
    ``releases`` fresh ones per dataset are drawn in chunks and only counted, so tens of
    millions of releases (a ceiling above 16, :func:`releases_for_ceiling`) need little
    memory. Same guarantee as :func:`audit_epsilon_lower_bound`.
    """
    delta, confidence = _check(delta, confidence)
    rng = np.random.default_rng(seed)
    selection = int(releases if selection_releases is None else selection_releases)
    sel = [np.asarray(draw(d, rng, selection), dtype=np.float64) for d in (0, 1)]
    grid = _default_thresholds(np.concatenate(sel), num_thresholds)
    alpha = 1.0 - confidence
    t, rule = _select(sel[0], sel[1], grid, delta, alpha)
    errors = [0, 0]
    for d in (0, 1):
        left = int(releases)
        while left > 0:
            count = min(chunk, left)
            sample = np.asarray(draw(d, rng, count))
            empty = sample[:0]
            fp, fn = _test_errors(sample, empty, t, rule) if d == 0 else _test_errors(empty, sample, t, rule)
            errors[d] += fp if d == 0 else fn
            left -= count
    return _result(t, rule, errors[0], errors[1], int(releases), int(releases), delta, confidence, grid.size,
                   "split", alpha / _RATES_PER_TEST)
