"""Membership-inference statistics against hand computations and independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from benchmark.privacy.mia_stats import (clopper_pearson, delong_interval, dp_tpr_bound, exceeds_dp_bound,
                                         membership_figures, tpr_at_fpr)


def test_tpr_at_fpr_by_hand():
    # 101 non-members: 100 in [0, 0.5] and one outlier at 0.95; FPR <= 1% allows floor(1.01) = 1 false positive.
    nonmembers = [*np.linspace(0, 0.5, 100), 0.95]
    members = [0.9, 0.8, 0.7, 0.2]
    rate = tpr_at_fpr(members, nonmembers, 0.01)
    assert rate.threshold == 0.5  # the 2nd largest non-member
    assert (rate.true_positives, rate.false_positives) == (3, 1)
    assert rate.tpr == 0.75 and rate.fpr == pytest.approx(1 / 101)
    # At 0.1% no false positive is allowed: the threshold is the largest non-member.
    strict = tpr_at_fpr(members, nonmembers, 0.001)
    assert strict.threshold == 0.95 and strict.true_positives == 0 and strict.fpr == 0


def test_tpr_at_fpr_leaves_ties_at_the_threshold_out():
    rate = tpr_at_fpr([1.0, 1.0, 2.0], [1.0] * 10, 0.05)  # nothing may exceed a tie with 10 non-members
    assert rate.false_positives == 0 and rate.true_positives == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tpr_at_fpr_is_the_best_threshold_whose_empirical_fpr_is_within_the_target(seed):
    rng = np.random.default_rng(seed)
    pos, neg = rng.normal(1, 1, 50).round(1), rng.normal(0, 1, 300).round(1)  # rounded: ties
    for target in (0.01, 0.05, 0.2):
        rate = tpr_at_fpr(pos, neg, target)
        assert rate.fpr <= target
        # Brute force over every threshold "score > t", t in the observed values and -inf.
        best = max((pos > t).mean() for t in [-np.inf, *np.concatenate([pos, neg])] if (neg > t).mean() <= target)
        assert rate.tpr == best


@pytest.mark.parametrize("k,n", [(0, 32), (1, 32), (5, 32), (16, 32), (31, 32), (32, 32), (3, 1000), (0, 1)])
def test_clopper_pearson_matches_scipy_binomtest(k, n):
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    low, high = clopper_pearson(k, n)
    assert low == pytest.approx(ref.low, abs=1e-12) and high == pytest.approx(ref.high, abs=1e-12)


def test_clopper_pearson_refuses_impossible_counts():
    with pytest.raises(ValueError):
        clopper_pearson(5, 4)


def test_delong_interval_by_hand():
    # V10 = (1, 2/3), V01 = (1/2, 1, 1): AUC 5/6, var = (1/18)/2 + (1/12)/3 = 1/18.
    auc, low, high = delong_interval([0.8, 0.6], [0.7, 0.1, 0.2])
    assert auc == pytest.approx(5 / 6)
    half = stats.norm.ppf(0.975) * math.sqrt(1 / 18)
    assert low == pytest.approx(5 / 6 - half) and high == 1.0


def test_delong_auc_and_width_agree_with_mann_whitney_and_a_bootstrap():
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(0.7, 1, 120), rng.normal(0, 1, 200)
    auc, low, high = delong_interval(pos, neg)
    assert auc == pytest.approx(stats.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))
    boot = [stats.mannwhitneyu(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))).statistic
            / (len(pos) * len(neg)) for _ in range(400)]
    se_delong = (high - low) / (2 * stats.norm.ppf(0.975))
    assert se_delong == pytest.approx(np.std(boot), rel=0.2)


def test_dp_bound():
    assert dp_tpr_bound(0.01, 1.0, 1e-5) == pytest.approx(math.e * 0.01 + 1e-5)
    assert dp_tpr_bound(0.5, 8.0, 1e-5) == 1.0
    assert dp_tpr_bound(0.0, math.inf, 0.0) == 1.0


def _laplace_mechanism(epsilon: float, n: int, seed: int):
    """Scores of an epsilon-DP release of the membership bit: bit + Laplace(1/epsilon)."""
    rng = np.random.default_rng(seed)
    return 1.0 + rng.laplace(0, 1 / epsilon, n), rng.laplace(0, 1 / epsilon, n)


def test_planted_scores_above_the_bound_raise_the_flag():
    rng = np.random.default_rng(0)
    nonmembers = rng.normal(0, 1, 1000)
    members = rng.normal(10, 1, 200)  # separable: no 1-DP release can allow this
    figures, exceeded = membership_figures({"loss": members}, {"loss": nonmembers}, 1.0, 1e-5)
    assert figures["privacy/mia_exceeds_dp_bound"] == 1.0 and exceeded == ["loss"]
    assert figures["privacy/mia_loss_tpr_at_fpr_1pct_low"] > figures["privacy/mia_loss_dp_bound_at_fpr_1pct"]


def test_the_flag_names_the_calibrated_attack_when_it_alone_exceeds_the_bound():
    # Per-image difficulty (the reference loss, spread 1) hides a 0.1 drop of the members' loss
    # from the raw attack; the calibrated score (reference minus adapted loss) lays it bare.
    rng = np.random.default_rng(5)
    reference_m, reference_n = rng.normal(1, 1, 200), rng.normal(1, 1, 1000)
    adapted_m = reference_m - 0.1 + rng.normal(0, 0.01, 200)
    adapted_n = reference_n + rng.normal(0, 0.01, 1000)
    members = {"loss": -adapted_m, "loss_calibrated": reference_m - adapted_m}
    nonmembers = {"loss": -adapted_n, "loss_calibrated": reference_n - adapted_n}
    figures, exceeded = membership_figures(members, nonmembers, 1.0, 1e-5)
    assert exceeded == ["loss_calibrated"] and figures["privacy/mia_exceeds_dp_bound"] == 1.0
    assert figures["privacy/mia_loss_calibrated_auc"] == 1.0 and figures["privacy/mia_loss_auc"] < 0.6
    for suffix in ("1pct", "0p1pct"):
        assert figures[f"privacy/mia_loss_calibrated_tpr_at_fpr_{suffix}"] == 1.0
        assert f"privacy/mia_loss_calibrated_dp_bound_at_fpr_{suffix}" in figures


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_genuinely_dp_mechanism_stays_within_its_bound(seed):
    members, nonmembers = _laplace_mechanism(1.0, 5000, seed)
    figures, exceeded = membership_figures({"loss": members}, {"loss": nonmembers}, 1.0, 0.0)
    assert figures["privacy/mia_exceeds_dp_bound"] == 0.0 and not exceeded
    assert 0.5 < figures["privacy/mia_loss_auc"] < 0.8  # the attack does see something
    # The same scores claimed as 0.1-DP are caught: the flag can fail.
    rate = tpr_at_fpr(members, nonmembers, 0.01)
    assert exceeds_dp_bound(rate, 0.1, 0.0)


def test_non_private_runs_report_no_bound_and_no_flag():
    figures, _ = membership_figures({"loss": [1.0, 2.0], "similarity": [0.5, 0.6]},
                                    {"loss": [0.0, 1.5, 0.2], "similarity": [0.1, 0.7, 0.2]}, math.inf, 0.0)
    assert "privacy/mia_exceeds_dp_bound" not in figures
    assert not any("dp_bound" in k for k in figures)
    assert figures["privacy/mia_num_members"] == 2 and figures["privacy/mia_num_nonmembers"] == 3
    assert figures["privacy/mia_loss_auc"] == pytest.approx(5 / 6)
