"""DPAgg-TI's release (METHODS.md steps 2-5) on synthetic embeddings: bound, sensitivity,
noise level, subsampling, and an empirical privacy audit of the function the method uses."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from benchmark.adapt.dpagg_ti import bound_embeddings, draw_subset, release_embedding
from benchmark.privacy import audit_epsilon_lower_bound, calibrate_noisy_mean
from benchmark.privacy.randomness import release_rng

DELTA = 1e-5


def _report(epsilon, n, m, radius=1.0, neighbouring="replace_one", accountant="prv"):
    return calibrate_noisy_mean(epsilon, DELTA, radius, n, m, neighbouring, accountant)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _rng(seed=0):
    """The release's own kind of generator (Philox), seeded as a test needs."""
    return release_rng(seed, "test")


def test_clip_keeps_short_rows_and_normalize_puts_every_row_on_the_sphere():
    v = torch.tensor([[0.3, 0.4], [3.0, 4.0], [0.0, 0.0]])
    clipped = bound_embeddings(v, 1.0, "clip")
    normalized = bound_embeddings(v, 1.0, "normalize")
    torch.testing.assert_close(clipped[0], v[0])  # norm 0.5 < R: unchanged
    torch.testing.assert_close(clipped[1], torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(normalized[:2], torch.tensor([[0.6, 0.8], [0.6, 0.8]]))
    assert torch.equal(clipped[2], v[2]) and torch.equal(normalized[2], v[2])  # zero stays zero, finite
    with pytest.raises(ValueError, match="method.bound"):
        bound_embeddings(v, 1.0, "squash")


@pytest.mark.parametrize("bound", ["normalize", "clip"])
@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize("m", [8, 5])
def test_an_adversarial_image_moves_the_noiseless_aggregate_by_at_most_the_sensitivity(bound, centred, m):
    n, dim, radius = 8, 16, 0.7
    g = _gen(1)
    base = 3 * torch.randn(n, dim, generator=g)
    center = torch.randn(dim, generator=g) if centred else None
    report = _report(math.inf, n, m, radius, accountant="rdp")  # sigma = 0: the noiseless aggregate
    assert report.sigma == 0 and report.sensitivity == pytest.approx(2 * radius / m)
    worst = 0.0
    for trial in range(20):
        attacked = base.clone()
        attacked[trial % n] = 1e6 * torch.randn(dim, generator=g)  # a huge-norm embedding
        seed = 100 + trial  # the same subsample on both neighbours (a coupling)
        a = release_embedding(base, report, radius, m, bound=bound, center=center, rng=_rng(seed))
        b = release_embedding(attacked, report, radius, m, bound=bound, center=center, rng=_rng(seed))
        worst = max(worst, float((a - b).norm()))
    assert worst <= report.sensitivity * (1 + 1e-6)
    # The bound is tight: a record swapped for its opposite moves the mean by exactly 2R/m.
    flipped = base.clone()
    flipped[0] = -base[0] + (2 * center if centred else 0)
    a = release_embedding(base, report, radius, m, bound=bound, center=center, rng=_rng(7))
    b = release_embedding(flipped, report, radius, m, bound=bound, center=center, rng=_rng(7))
    moved = float((a - b).norm())
    assert moved <= report.sensitivity * (1 + 1e-6)
    if m == n:
        assert moved == pytest.approx(report.sensitivity, rel=1e-5)


def test_epsilon_inf_releases_the_exact_mean_of_the_bounded_embeddings():
    n, dim, radius = 6, 12, 2.0
    v = 5 * torch.randn(n, dim, generator=_gen(2))
    center = torch.randn(dim, generator=_gen(3))
    report = _report(math.inf, n, n, radius)
    plain = release_embedding(v, report, radius, n, bound="normalize", rng=_rng())
    torch.testing.assert_close(plain, bound_embeddings(v, radius, "normalize").mean(0), atol=1e-6, rtol=0)
    centred = release_embedding(v, report, radius, n, bound="clip", center=center, rng=_rng())
    torch.testing.assert_close(centred, bound_embeddings(v - center, radius, "clip").mean(0) + center,
                               atol=1e-6, rtol=0)
    rescaled = release_embedding(v, report, radius, n, rescale=True, rng=_rng())
    assert float(rescaled.norm()) == pytest.approx(radius, rel=1e-6)
    torch.testing.assert_close(rescaled / rescaled.norm(), plain / plain.norm())


@pytest.mark.parametrize("neighbouring", ["replace_one", "add_remove"])
def test_the_noise_std_is_the_reported_sigma(neighbouring):
    n, dim, radius, draws = 8, 64, 1.0, 2000
    v = torch.randn(n, dim, generator=_gen(4))
    report = _report(1.0, n, n, radius, neighbouring)
    assert report.sigma == pytest.approx(report.noise_multiplier * report.sensitivity)
    exact = bound_embeddings(v.double(), radius, "normalize").mean(0)
    g = _rng(5)
    residuals = torch.stack([release_embedding(v.double(), report, radius, n, rng=g) - exact
                             for _ in range(draws)])
    # 128k N(0, sigma^2) samples: the std is within ~0.4% (1 s.e.); 2% is > 5 s.e.
    assert float(residuals.std()) == pytest.approx(report.sigma, rel=0.02)
    assert abs(float(residuals.mean())) < 5 * report.sigma / math.sqrt(residuals.numel())
    # Independent coordinates: no correlation between two of them.
    corr = torch.corrcoef(residuals[:, :2].T)[0, 1]
    assert abs(float(corr)) < 5 / math.sqrt(draws)


def test_subsets_are_drawn_as_the_report_requires():
    n, m, trials = 10, 4, 4000
    g = _rng(6)
    counts = torch.zeros(n)
    for _ in range(trials):
        subset = draw_subset(n, m, "without_replacement", g)
        assert len(subset) == m and len(set(subset.tolist())) == m
        counts[subset] += 1
    # Uniform: each record is in the subset with probability m/n (s.e. ~0.008).
    assert torch.allclose(counts / trials, torch.full((n,), m / n), atol=0.04)
    sizes = torch.tensor([len(draw_subset(n, m, "poisson", g)) for _ in range(trials)], dtype=torch.float64)
    assert float(sizes.mean()) == pytest.approx(m, abs=0.15)  # Binomial(n, m/n)
    assert float(sizes.var()) == pytest.approx(n * (m / n) * (1 - m / n), rel=0.15)
    assert torch.equal(draw_subset(n, n, "none", g), torch.arange(n))


def test_the_release_refuses_a_report_for_other_parameters():
    report = _report(1.0, 8, 8, radius=1.0)
    v = torch.randn(8, 4)
    with pytest.raises(ValueError, match="does not match"):
        release_embedding(v, report, 2.0, 8, rng=_rng())  # another radius
    with pytest.raises(ValueError, match="does not match"):
        release_embedding(v[:6], report, 1.0, 8, rng=_rng())  # another n


def _audit(report, n, m, releases=20_000, seed=0):
    """Many releases of the method's own function on neighbouring sets (one canary swapped)."""
    dim, radius = 4, 1.0
    g = _gen(seed)
    base = 2 * torch.randn(n, dim, generator=g, dtype=torch.float64)
    g = _rng(seed)
    canary = torch.tensor([50.0, 0.0, 0.0, 0.0], dtype=torch.float64)  # huge norm: normalised to R e1
    d0, d1 = base.clone(), base.clone()
    d0[0], d1[0] = canary, -canary

    def statistic(data):  # the optimal test for a Gaussian mean shift: projection on e1
        return [float(release_embedding(data, report, radius, m, rng=g)[0]) for _ in range(releases)]

    return audit_epsilon_lower_bound(statistic(d0), statistic(d1), DELTA, confidence=0.95)


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_audit_of_the_release_stays_below_epsilon_and_catches_a_tenth_of_the_noise():
    report = _report(1.0, 8, 8)
    honest = _audit(report, 8, 8)
    assert honest.epsilon_lower_bound < report.epsilon <= 1.0
    assert honest.epsilon_lower_bound > 0.2  # the audit sees real leakage: it is not vacuous
    broken = dataclasses.replace(report, sigma=report.sigma / 10, noise_multiplier=report.noise_multiplier / 10)
    assert _audit(broken, 8, 8, releases=5000).epsilon_lower_bound > 2.0


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_audit_of_the_subsampled_release_stays_below_epsilon():
    pytest.importorskip("dp_accounting")
    report = _report(1.0, 8, 4, accountant="rdp")
    assert report.sampling == "without_replacement"
    assert _audit(report, 8, 4, seed=1).epsilon_lower_bound < report.epsilon


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_embedding_counts_as_the_data_independent_zero(centred, bad):
    n, dim, radius = 6, 16, 1.0
    v = torch.randn(n, dim, generator=_gen(7)).double()
    init = torch.randn(dim, generator=_gen(8)).double() if centred else None
    broken = v.clone()
    broken[2, 3] = bad
    replaced = v.clone()
    replaced[2] = init if centred else 0.0  # zero after centring: the initializer row itself
    report = _report(1.0, n, n, radius)
    got = release_embedding(broken, report, radius, n, center=init, rng=_rng(9))
    assert torch.isfinite(got).all()
    assert torch.equal(got, release_embedding(replaced, report, radius, n, center=init, rng=_rng(9)))
