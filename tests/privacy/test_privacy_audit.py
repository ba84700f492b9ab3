"""Empirical privacy audits of the noisy mean (full 4-D releases), and the audit statistic itself.

The audits at epsilon 1, 4, 8 of every release kind, with planted bugs, are in
``test_privacy_audit_bugs.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.privacy import audit_epsilon_lower_bound, calibrate_noisy_mean
from benchmark.privacy.audit import audit_ceiling, releases_for_ceiling

EPSILON, DELTA, RADIUS, DIM = 1.0, 1e-5, 1.0, 4
RELEASES = 20_000


def _clip(vectors: np.ndarray, radius: float) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors * np.minimum(1.0, radius / np.maximum(norms, 1e-12))


def _neighbours(n: int, rng: np.random.Generator):
    """Two datasets of n clipped embeddings that differ in one canary, swapped for its
    opposite: the worst case for a replace-one mean (the means differ by exactly 2R/m)."""
    base = _clip(rng.normal(size=(n, DIM)), RADIUS)
    canary = np.zeros(DIM)
    canary[0] = RADIUS
    d0, d1 = base.copy(), base.copy()
    d0[0], d1[0] = canary, -canary
    return d0, d1, canary / RADIUS


def _noisy_means(data: np.ndarray, m: int, sigma: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` independent runs of the DPAgg-TI release: a uniform size-m subset
    without replacement (all records when m == n), its mean, plus N(0, sigma^2 I)."""
    n = data.shape[0]
    if m == n:
        means = np.broadcast_to(data.mean(axis=0), (count, DIM))
    else:
        subsets = np.argsort(rng.random((count, n)), axis=1)[:, :m]
        means = data[subsets].mean(axis=1)
    return means + sigma * rng.standard_normal((count, DIM))


def _audit(n: int, m: int, noise_scale: float, seed: int, accountant: str = "prv", neighbouring: str = "replace_one",
           releases: int = RELEASES):
    """Calibrate as told, then run the release on replace-one neighbours and audit it."""
    rng = np.random.default_rng(seed)
    report = calibrate_noisy_mean(EPSILON, DELTA, RADIUS, n=n, m=m, neighbouring=neighbouring, accountant=accountant)
    d0, d1, direction = _neighbours(n, rng)
    sigma = report.sigma * noise_scale
    # The optimal test statistic for two Gaussians: the projection on the difference.
    s0 = _noisy_means(d0, m, sigma, releases, rng) @ direction
    s1 = _noisy_means(d1, m, sigma, releases, rng) @ direction
    return report, audit_epsilon_lower_bound(s0, s1, DELTA, confidence=0.95)


def test_audit_of_the_calibrated_noisy_mean_stays_below_the_claim():
    report, result = _audit(n=8, m=8, noise_scale=1.0, seed=7)
    assert report.epsilon <= EPSILON
    assert result.epsilon_lower_bound < report.epsilon
    # ... but the audit is not vacuous: it does see part of the real leakage.
    assert result.epsilon_lower_bound > 0.2


def test_audit_catches_a_mechanism_with_too_little_noise():
    _, result = _audit(n=8, m=8, noise_scale=0.1, seed=7)  # noise divided by 10
    assert result.epsilon_lower_bound > 2 * EPSILON


def test_audit_catches_the_add_remove_sensitivity_used_for_replace_one_neighbours():
    # A plausible bug: noise for sensitivity R/m while a record can be swapped (2R/m).
    # The true epsilon is then ~2.2; 200k releases (cheap: 4-D Gaussians) see it.
    report, result = _audit(n=8, m=8, noise_scale=1.0, seed=7, neighbouring="add_remove", releases=200_000)
    assert report.epsilon <= EPSILON
    assert result.epsilon_lower_bound > 1.2 * EPSILON
    # The correct calibration passes the same, more powerful, audit.
    _, correct = _audit(n=8, m=8, noise_scale=1.0, seed=7, releases=200_000)
    assert correct.epsilon_lower_bound < EPSILON


@pytest.mark.parametrize("accountant", [pytest.param("rdp", marks=pytest.mark.slow), "pld"])
def test_audit_of_the_subsampled_noisy_mean_stays_below_the_claim(accountant):
    pytest.importorskip("dp_accounting")
    report, result = _audit(n=8, m=4, noise_scale=1.0, seed=11, accountant=accountant)
    assert report.sampling == "without_replacement"
    assert result.epsilon_lower_bound < report.epsilon


def test_clopper_pearson_bound_on_perfectly_separated_samples():
    rng = np.random.default_rng(0)
    s0, s1 = rng.random(500), 2 + rng.random(400)
    result = audit_epsilon_lower_bound(s0, s1, DELTA, confidence=0.9, thresholds=[1.5])
    # No errors at all: each rate's upper bound is 1 - alpha^(1/N) (Clopper-Pearson with 0
    # successes), alpha = 0.1 split over the 4 rates bounded at one fixed threshold.
    alpha = 0.1 / 4
    fpr_hi, fnr_hi = 1 - alpha ** (1 / 500), 1 - alpha ** (1 / 400)
    expected = max(math.log((1 - DELTA - fnr_hi) / fpr_hi), math.log((1 - DELTA - fpr_hi) / fnr_hi))
    assert result.epsilon_lower_bound == pytest.approx(expected, rel=1e-9)
    assert (result.rule, result.fpr, result.fnr, result.threshold, result.selection) == ("above", 0.0, 0.0, 1.5,
                                                                                          "fixed")
    # Split (the default): the test is chosen on half of each sample and bounded on the
    # other half only, alpha split over that one test's FPR and FNR.
    split = audit_epsilon_lower_bound(s0, s1, DELTA, confidence=0.9)
    assert (split.n0, split.n1, split.selection) == (250, 200, "split")
    fpr_hi, fnr_hi = 1 - 0.05 ** (1 / 250), 1 - 0.05 ** (1 / 200)
    expected = max(math.log((1 - DELTA - fnr_hi) / fpr_hi), math.log((1 - DELTA - fpr_hi) / fnr_hi))
    assert split.epsilon_lower_bound == pytest.approx(expected, rel=1e-9) == pytest.approx(split.ceiling)


def test_ceiling_grows_like_log_n_and_is_sized_for_twice_epsilon():
    # The old audit's 20,000 releases could never certify more than ~8: no bug at
    # epsilon 8 could be seen. releases_for_ceiling sizes N for any target.
    assert audit_ceiling(20_000, DELTA) < 9.0 < 16.0
    for epsilon in (1.0, 4.0, 8.0):
        count = releases_for_ceiling(2 * epsilon, DELTA)
        assert audit_ceiling(count, DELTA) >= 2 * epsilon > audit_ceiling(int(count * 0.99), DELTA)
    assert releases_for_ceiling(16.0, DELTA) < 4e7


def test_split_audit_does_not_reward_thresholds_fit_to_noise():
    # Identical mechanisms, many thresholds: choosing and bounding on the same releases
    # at the per-test level finds a lucky threshold; the split audit must not.
    rng = np.random.default_rng(3)
    flagged = 0
    for _ in range(20):
        s0, s1 = rng.normal(size=400), rng.normal(size=400)
        flagged += audit_epsilon_lower_bound(s0, s1, DELTA, num_thresholds=400).epsilon_lower_bound > 0
    assert flagged <= 3  # at most ~5% expected at confidence 0.95


def test_identical_mechanisms_give_no_evidence_and_the_audit_is_symmetric():
    rng = np.random.default_rng(1)
    same = rng.normal(size=5000)
    assert audit_epsilon_lower_bound(same, same.copy(), DELTA).epsilon_lower_bound == 0.0
    s0, s1 = rng.normal(size=3000), rng.normal(loc=1.5, size=3000)
    forward = audit_epsilon_lower_bound(s0, s1, DELTA)
    backward = audit_epsilon_lower_bound(s1, s0, DELTA)
    assert forward.epsilon_lower_bound == pytest.approx(backward.epsilon_lower_bound, rel=1e-12)
    assert {forward.rule, backward.rule} == {"above", "below"}
    assert 0 < forward.epsilon_lower_bound <= forward.epsilon_point
    assert forward.threshold == backward.threshold


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(release_d0=np.zeros((3, 2)), release_d1=np.zeros(3), delta=1e-5), "release_d0"),
        (dict(release_d0=np.zeros(3), release_d1=[], delta=1e-5), "release_d1"),
        (dict(release_d0=[0.0, np.nan], release_d1=[0.0], delta=1e-5), "non-finite"),
        (dict(release_d0=[0.0], release_d1=[0.0], delta=1.0), "delta"),
        (dict(release_d0=[0.0], release_d1=[0.0], delta=1e-5, confidence=1.0), "confidence"),
    ],
)
def test_audit_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        audit_epsilon_lower_bound(**kwargs)
