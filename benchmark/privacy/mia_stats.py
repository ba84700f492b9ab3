"""Membership-inference statistics: AUC, TPR at a fixed FPR, their intervals, the DP bound.

An attack gives every candidate image a score (higher: "more likely a member"). From the
scores of the members (the private training images) and of the non-members (held-out
images of the same population) this module computes, per attack:

* the ROC AUC (:func:`benchmark.metrics.detection.roc_auc`, ties counted half) with a
  DeLong 95% interval (normal approximation of the Mann-Whitney statistic's variance,
  clipped to [0, 1]);
* the TPR at a target FPR with an **empirical** threshold: the threshold is chosen on
  these same non-member scores so that the empirical FPR is *at most* the target, and,
  among such thresholds, the TPR is largest; the TPR gets a two-sided Clopper-Pearson
  95% interval (exact binomial, conservative);
* for an ``(epsilon, delta)``-DP release, the bound every attack obeys: on *any*
  threshold test, ``TPR <= e^epsilon FPR + delta`` (Kairouz, Oh & Viswanath 2015).

Guarantees, stated the way Opacus states its own:

* The intervals are for the attack's rates on the population the candidates were drawn
  from, given the trained model(s): they do not account for re-training randomness
  beyond the runs pooled.
* :func:`exceeds_dp_bound` is ``True`` only when the **lower** Clopper-Pearson end of
  the TPR exceeds the DP bound evaluated at the **upper** Clopper-Pearson end of the FPR:
  sampling error in either rate alone cannot raise it, so a raised flag means (up to the
  about 5% error of each interval) a bug or a broken guarantee. Because the threshold is
  selected on the same scores, the flag is a diagnostic, not a certified audit (for that,
  see :mod:`benchmark.privacy.audit`, which splits selection from estimation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from benchmark.metrics.detection import roc_auc
from benchmark.privacy.audit import clopper_pearson_upper

TARGET_FPRS = (("1pct", 0.01), ("0p1pct", 0.001))  # key suffix, target FPR
CONFIDENCE = 0.95


def _scores(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"membership inference needs at least one {name} score")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} scores must be finite (got {int((~np.isfinite(arr)).sum())} non-finite)")
    return arr


def clopper_pearson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided exact (Clopper-Pearson) interval for a binomial rate.

    Each end holds with probability at least ``(1 + confidence) / 2``; the interval covers
    the rate with probability at least ``confidence`` for every true rate.
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes} of {trials}")
    alpha = (1.0 - confidence) / 2
    # The audit's one-sided bound, used at both ends: the lower end of the rate is one minus
    # the upper end of the complementary rate (Beta(a, b) and 1 - Beta(b, a) agree).
    high = float(clopper_pearson_upper([successes], trials, alpha)[0])
    low = 1.0 - float(clopper_pearson_upper([trials - successes], trials, alpha)[0])
    return low, high


@dataclass(frozen=True)
class RateAtFPR:
    """A threshold test ``score > threshold`` chosen for a target FPR, and its counts."""

    threshold: float
    true_positives: int
    members: int
    false_positives: int
    nonmembers: int

    @property
    def tpr(self) -> float:
        return self.true_positives / self.members

    @property
    def fpr(self) -> float:
        return self.false_positives / self.nonmembers


def tpr_at_fpr(members, nonmembers, target_fpr: float) -> RateAtFPR:
    """The test ``score > threshold`` of largest TPR whose **empirical** FPR is <= ``target_fpr``.

    With ``k = floor(target_fpr * N)`` false positives allowed among ``N`` non-members,
    the threshold is the ``(k+1)``-th largest non-member score (``-inf`` when ``k >= N``):
    every lower threshold admits more than ``k`` non-members, and a strict ``>`` leaves
    non-members tied at the threshold out, so the empirical FPR never exceeds the target
    (with ``N < 1 / target_fpr`` that means an FPR of exactly 0).
    """
    pos, neg = _scores(members, "member"), _scores(nonmembers, "non-member")
    if not 0 <= target_fpr <= 1:
        raise ValueError(f"target FPR must be in [0, 1], got {target_fpr}")
    allowed = math.floor(target_fpr * len(neg) + 1e-9)  # 1e-9: 0.01 * 300 is 2.9999999999999996
    ordered = np.sort(neg)[::-1]
    threshold = float(ordered[allowed]) if allowed < len(neg) else -math.inf
    return RateAtFPR(threshold, int((pos > threshold).sum()), len(pos), int((neg > threshold).sum()), len(neg))


def delong_interval(members, nonmembers, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(AUC, low, high)``: the AUC and its DeLong (1988) normal-approximation interval.

    The variance is ``var(V10) / m + var(V01) / n`` with the structural components
    ``V10_i = P(neg < pos_i) + 0.5 P(neg = pos_i)`` and ``V01_j`` likewise for each
    negative; the interval is clipped to [0, 1] (it collapses to a point when the
    classes are perfectly separated: the approximation says nothing there).
    """
    pos, neg = _scores(members, "member"), _scores(nonmembers, "non-member")
    auc = roc_auc(np.concatenate([pos, neg]).tolist(), [True] * len(pos) + [False] * len(neg))
    sorted_neg, sorted_pos = np.sort(neg), np.sort(pos)
    below = np.searchsorted(sorted_neg, pos, side="left")
    ties = np.searchsorted(sorted_neg, pos, side="right") - below
    v10 = (below + 0.5 * ties) / len(neg)
    above = len(pos) - np.searchsorted(sorted_pos, neg, side="right")
    ties_p = np.searchsorted(sorted_pos, neg, side="right") - np.searchsorted(sorted_pos, neg, side="left")
    v01 = (above + 0.5 * ties_p) / len(pos)
    var = (np.var(v10, ddof=1) / len(pos) if len(pos) > 1 else 0.0) + \
          (np.var(v01, ddof=1) / len(neg) if len(neg) > 1 else 0.0)
    half = float(stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(max(var, 0.0)))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def dp_tpr_bound(fpr: float, epsilon: float, delta: float) -> float:
    """The largest TPR an ``(epsilon, delta)``-DP release allows at ``fpr``: ``min(1, e^eps fpr + delta)``."""
    if math.isinf(epsilon):
        return 1.0
    return min(1.0, math.exp(epsilon) * fpr + delta)


def exceeds_dp_bound(rate: RateAtFPR, epsilon: float, delta: float, confidence: float = CONFIDENCE) -> bool:
    """Whether the TPR's lower CP end exceeds the DP bound at the FPR's upper CP end (see the module)."""
    if math.isinf(epsilon):
        return False
    tpr_low, _ = clopper_pearson(rate.true_positives, rate.members, confidence)
    _, fpr_high = clopper_pearson(rate.false_positives, rate.nonmembers, confidence)
    return tpr_low > dp_tpr_bound(fpr_high, epsilon, delta)


def attack_summary(attack: str, members: Sequence[float], nonmembers: Sequence[float], epsilon: float,
                   delta: float, prefix: str = "privacy/mia") -> tuple[dict[str, float], bool]:
    """The ``privacy/mia_<attack>_*`` figures of one attack, and whether it exceeds the DP bound.

    The DP bound keys (``..._dp_bound_at_fpr_<target>``: ``e^eps FPR + delta`` at the
    measured FPR) are written only for a finite ``epsilon``.
    """
    auc, low, high = delong_interval(members, nonmembers)
    out = {f"{prefix}_{attack}_auc": auc, f"{prefix}_{attack}_auc_low": low, f"{prefix}_{attack}_auc_high": high}
    exceeded = False
    for suffix, target in TARGET_FPRS:
        rate = tpr_at_fpr(members, nonmembers, target)
        tpr_low, tpr_high = clopper_pearson(rate.true_positives, rate.members)
        key = f"{prefix}_{attack}_tpr_at_fpr_{suffix}"
        out.update({key: rate.tpr, f"{key}_low": tpr_low, f"{key}_high": tpr_high,
                    f"{prefix}_{attack}_fpr_at_fpr_{suffix}": rate.fpr})
        if math.isfinite(epsilon):
            out[f"{prefix}_{attack}_dp_bound_at_fpr_{suffix}"] = dp_tpr_bound(rate.fpr, epsilon, delta)
            exceeded |= exceeds_dp_bound(rate, epsilon, delta)
    return out, exceeded


def membership_figures(members: dict[str, Sequence[float]], nonmembers: dict[str, Sequence[float]],
                       epsilon: float, delta: float) -> tuple[dict[str, float], list[str]]:
    """Every ``privacy/mia_*`` figure of the attacks in ``members``/``nonmembers`` (scores by
    attack), and the attacks that exceed the DP bound.

    ``privacy/mia_exceeds_dp_bound`` (1.0 / 0.0) is written only for a finite ``epsilon``.
    A run and a pool of runs go through this same function.
    """
    out: dict[str, float] = {}
    exceeded = []
    for attack in sorted(members):
        figures, over = attack_summary(attack, members[attack], nonmembers[attack], epsilon, delta)
        out.update(figures)
        if over:
            exceeded.append(attack)
    first = next(iter(sorted(members)))
    out["privacy/mia_num_members"] = len(members[first])
    out["privacy/mia_num_nonmembers"] = len(nonmembers[first])
    if math.isfinite(epsilon):
        out["privacy/mia_exceeds_dp_bound"] = 1.0 if exceeded else 0.0
    return out, exceeded
