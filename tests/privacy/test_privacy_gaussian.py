"""The analytic Gaussian mechanism against independent computations."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate

from benchmark.privacy import calibrate_gaussian_sigma, gaussian_delta, gaussian_epsilon

SIGMAS = [0.3, 0.7, 1.0, 2.5, 6.0]
EPSILONS = [0.0, 0.05, 0.5, 1.0, 2.0, 4.0]


def _phi(x: float) -> float:
    # erfc keeps full relative precision in the lower tail, where erf would cancel.
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _delta_closed_form(eps: float, sigma: float, sens: float) -> float:
    """Balle & Wang (2018) Thm 8, written out with math.erfc and no log-space tricks."""
    a = sens / (2 * sigma) - eps * sigma / sens
    b = -sens / (2 * sigma) - eps * sigma / sens
    return _phi(a) - math.exp(eps) * _phi(b)


def _delta_by_integration(eps: float, sigma: float, sens: float) -> float:
    """Hockey-stick divergence E_{P}[(1 - e^eps q/p)_+] of P = N(0, s^2) and Q = N(D, s^2).

    Integrates the positive part of p(x) - e^eps q(x) numerically over the real line: no
    use of the closed form or of where the privacy loss crosses epsilon.
    """

    def positive_part(x: float) -> float:
        p = math.exp(-0.5 * (x / sigma) ** 2)
        q = math.exp(eps - 0.5 * ((x - sens) / sigma) ** 2)
        return max(p - q, 0.0) / (sigma * math.sqrt(2 * math.pi))

    width = 40 * sigma + 40 * sens
    value, _ = integrate.quad(positive_part, -width, width, limit=400, epsabs=0, epsrel=1e-11)
    return value


@pytest.mark.parametrize("sigma", SIGMAS)
def test_profile_matches_closed_form_written_with_erfc(sigma):
    for eps in EPSILONS + [8.0]:
        for sens in (1.0, 0.25):
            s = sigma * sens  # same noise multiplier at a different sensitivity
            expected = _delta_closed_form(eps, s, sens)
            if expected < 1e-250:
                continue
            assert gaussian_delta(eps, s, sens) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_profile_matches_numeric_integration_of_the_privacy_loss():
    for sigma in (0.5, 1.0, 3.0):
        for eps in (0.0, 0.3, 1.0, 3.0):
            expected = _delta_by_integration(eps, sigma, 1.0)
            assert gaussian_delta(eps, sigma, 1.0) == pytest.approx(expected, rel=1e-6, abs=0)


def test_profile_edge_cases_and_large_epsilon_do_not_overflow():
    assert gaussian_delta(math.inf, 1.0, 1.0) == 0.0
    assert gaussian_delta(1.0, 0.0, 1.0) == 1.0  # no noise: nothing is private
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning would fail here
        with np.errstate(all="raise"):
            values = [gaussian_delta(eps, 0.2, 1.0) for eps in np.linspace(0, 800, 161)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(a >= b for a, b in zip(values, values[1:]))  # non-increasing in epsilon
    assert gaussian_delta(800.0, 0.2, 1.0) == 0.0  # underflows cleanly, no nan


def test_profile_where_e_to_the_epsilon_overflows_matches_high_precision():
    # e^710 overflows a float (math.exp raises), yet delta is a normal number here:
    # check against the closed form evaluated with 50-digit arithmetic.
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    for eps, z in [(710.0, 0.03), (300.0, 0.05), (40.0, 0.1)]:
        phi = lambda x: mpmath.ncdf(x)  # noqa: E731
        exact = phi(1 / (2 * z) - eps * z) - mpmath.exp(eps) * phi(-1 / (2 * z) - eps * z)
        assert exact > 0
        assert gaussian_delta(eps, z, 1.0) == pytest.approx(float(exact), rel=1e-9, abs=0)


@pytest.mark.parametrize("delta", [1e-3, 1e-5, 1e-9])
@pytest.mark.parametrize("eps", [0.1, 0.5, 1.0, 3.0, 10.0])
def test_calibrate_round_trip(eps, delta):
    for sens in (1.0, 0.03):
        sigma = calibrate_gaussian_sigma(eps, delta, sens)
        assert gaussian_delta(eps, sigma, sens) <= delta  # meets the target ...
        assert gaussian_delta(eps, sigma * (1 - 1e-4), sens) > delta  # ... and is (nearly) minimal
        achieved = gaussian_epsilon(sigma, delta, sens)
        assert achieved <= eps * (1 + 1e-9)
        assert achieved >= eps * (1 - 1e-6)
        assert gaussian_delta(achieved, sigma, sens) <= delta
    # Only the ratio sigma / sensitivity matters.
    assert calibrate_gaussian_sigma(eps, delta, 0.03) == pytest.approx(0.03 * calibrate_gaussian_sigma(eps, delta, 1.0),
                                                                        rel=1e-9)


def test_known_value_and_independent_implementation():
    # Balle & Wang's analytic calibration at (1, 1e-5) is sigma ~ 3.73 (vs 4.84 classical).
    assert calibrate_gaussian_sigma(1.0, 1e-5, 1.0) == pytest.approx(3.7306, abs=1e-4)
    gm = pytest.importorskip("dp_accounting.gaussian_mechanism")
    for eps, delta in [(0.2, 1e-6), (1.0, 1e-5), (5.0, 1e-8)]:
        assert calibrate_gaussian_sigma(eps, delta, 1.0) == pytest.approx(gm.get_sigma_gaussian(eps, delta), rel=1e-6)
        assert gaussian_epsilon(2.0, delta, 1.0) == pytest.approx(gm.get_epsilon_gaussian(2.0, delta), rel=1e-6)


@pytest.mark.parametrize("delta", [1e-2, 1e-5, 1e-10])
def test_classical_bound_is_never_below_the_analytic_sigma(delta):
    # Dwork & Roth Thm A.1, valid for eps < 1: the analytic sigma is the minimum, so the
    # classical one can only be larger.
    for eps in np.linspace(0.01, 0.99, 25):
        classical = math.sqrt(2 * math.log(1.25 / delta)) * 1.0 / eps
        assert classical >= calibrate_gaussian_sigma(eps, delta, 1.0)


def test_gaussian_epsilon_is_the_inverse_in_epsilon():
    for sigma in (0.5, 1.0, 4.0, 30.0):
        for delta in (1e-3, 1e-6):
            eps = gaussian_epsilon(sigma, delta, 1.0)
            assert gaussian_delta(eps, sigma, 1.0) <= delta
            if eps > 0:
                assert gaussian_delta(eps * (1 - 1e-6), sigma, 1.0) > delta
    assert gaussian_epsilon(0.0, 1e-5, 1.0) == math.inf
    assert gaussian_epsilon(1e4, 0.5, 1.0) == 0.0  # huge noise: epsilon 0 already meets delta
    assert calibrate_gaussian_sigma(math.inf, 1e-5, 1.0) == 0.0


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "abc", None, True])
def test_calibrate_rejects_bad_epsilon(bad):
    with pytest.raises(ValueError, match="privacy.epsilon"):
        calibrate_gaussian_sigma(bad, 1e-5, 1.0)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -1e-5, float("nan")])
def test_calibrate_rejects_bad_delta(bad):
    with pytest.raises(ValueError, match="privacy.delta"):
        calibrate_gaussian_sigma(1.0, bad, 1.0)
    with pytest.raises(ValueError, match="privacy.delta"):
        gaussian_epsilon(1.0, bad, 1.0)
