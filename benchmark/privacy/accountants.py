"""Epsilon of a subsampled Gaussian mechanism, computed by a well-kept library.

Which library answers each (neighbouring, accountant) pair, and why:

* ``add_remove`` -- Poisson sampling with rate ``q`` (each record kept independently):

  - ``prv``: ``opacus.accountants.PRVAccountant`` (Gopi et al. 2021);
  - ``rdp``: ``opacus.accountants.RDPAccountant`` (Mironov et al. 2019);
  - ``pld``: ``dp_accounting.pld.PLDAccountant`` with ``ADD_OR_REMOVE_ONE`` and a
    ``PoissonSampledDpEvent``.

* ``replace_one`` -- a fixed-size subset of ``m`` of the ``n`` records, drawn uniformly
  without replacement (``q = m/n``):

  - ``prv``, ``pld``: the *same* computation as Poisson add/remove at the same ``(z, q)``.
    Sampling without replacement under substitution is tightly dominated by the pair
    ``((1 - q) N(0, z^2) + q N(1, z^2), N(0, z^2))`` with ``z = sigma / (2R/m)`` (Zhu,
    Dong & Wang 2022): the replaced record is in the subset with probability ``q``, and
    then moves the mean by at most ``2R/m``; otherwise the outputs coincide. That pair is
    exactly the Poisson-subsampled Gaussian pair under add/remove, which both libraries
    account for (``tests/privacy/test_privacy_subsampling.py`` checks it against a
    brute-force worst case over small datasets). This is tight: equality holds when the
    other records sit where the replaced one goes.
  - ``rdp``: ``dp_accounting.rdp.RdpAccountant`` with ``REPLACE_ONE`` and a
    ``SampledWithoutReplacementDpEvent`` (Wang, Balle & Kasiviswanathan 2019, Thm 27):
    valid but loose (12-48% more noise at one step).

* Without subsampling (``q = 1``) every accountant handles both relations: both then
  face the same pair ``N(0, z^2)`` vs ``N(1, z^2)``.

Not used: ``dp_accounting``'s PLD ``REPLACE_ONE`` Poisson event, a different mechanism
(Poisson sampling with substitution, whose noise multiplier is also scaled to *half* the
replacement distance, unlike its RDP accountant's).

The noise multiplier ``z`` is always the noise std divided by the L2 sensitivity under
the chosen neighbouring relation (``2R/m`` for a replace-one mean, ``R/m`` for an
add/remove one): that is the convention of both Opacus accountants and of
``dp_accounting``'s RDP accountant for ``SampledWithoutReplacementDpEvent``.

Precision: PRV's ``eps_error`` and PLD's discretization interval are absolute errors in
epsilon, which a small epsilon cannot afford (with Opacus' default 0.01 no noise at all
reaches epsilon 0.01). Unless the caller fixes ``eps_error``, the error is kept within 1%
of the answer: ``pld`` re-discretizes at ``0.01 * epsilon``; ``prv`` (whose cost grows
as ``1/eps_error``: 6 s one-shot at 1e-4) is complemented there by the PLD accountant at
that precision, and the smaller of the two upper bounds is returned. Both are valid
upper bounds on the same exact profile, so their minimum is one too.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np

from .validation import check_delta, check_noise_multiplier, check_sample_rate, check_steps

__all__ = ["ACCOUNTANTS", "NEIGHBOURING", "subsampled_epsilon", "check_supported"]

ACCOUNTANTS = ("prv", "rdp", "pld")
NEIGHBOURING = ("replace_one", "add_remove")

# PRV: Opacus' default eps_error (0.01, absolute) is what DP-SGD over many steps can
# afford; a one-shot release is cheap to account for, so it gets a 10x finer mesh (the
# reported epsilon is an upper bound that includes this error either way).
_PRV_EPS_ERROR_ONE_SHOT = 1e-3
_PRV_EPS_ERROR_MANY_STEPS = 1e-2
# PLD: 1e-3 is 10x coarser than dp_accounting's default and 10x faster; the estimate
# stays pessimistic (an upper bound), and the loss is below 1e-3 in epsilon here.
_PLD_DISCRETIZATION = 1e-3
# Target error relative to epsilon (module docstring), and the finest PLD grid used for
# it (a floor on the cost; reached only below epsilon 1e-4, far below any useful target).
_RELATIVE_PRECISION = 0.01
_FINEST_PLD_DISCRETIZATION = 1e-6
# RDP orders: Opacus' defaults plus the large orders that a single, strongly
# amplified step needs (otherwise the optimum sits at the edge of the grid).
_RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [80, 128, 256, 512, 1024]


def _dp_accounting():
    try:
        import dp_accounting
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this accountant needs Google's dp_accounting package: pip install dp-accounting"
        ) from exc
    return dp_accounting


def check_supported(accountant: str, neighbouring: str, subsampled: bool) -> None:
    """Raise a ``ValueError`` naming the option if no library here covers the combination.

    Every accountant covers both relations, with or without subsampling (see the module
    docstring); only unknown names are refused.
    """
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"privacy.accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    if neighbouring not in NEIGHBOURING:
        raise ValueError(f"neighbouring must be one of {NEIGHBOURING}, got {neighbouring!r}")


def _opacus_epsilon(kind: str, z: float, q: float, steps: int, delta: float, eps_error) -> float:
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = PRVAccountant() if kind == "prv" else RDPAccountant()
    # One (noise, rate, count) entry: the same bookkeeping Opacus' optimizer hooks write.
    acc.history = [(z, q, steps)]
    # q = 1 makes log(1 - q) = -inf inside Opacus' PRV formulas; numpy warns but the
    # values are right (the mass at t <= log(1 - q) is empty).
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "prv":
            if eps_error is None:
                eps_error = _PRV_EPS_ERROR_ONE_SHOT if steps == 1 else _PRV_EPS_ERROR_MANY_STEPS
            return float(acc.get_epsilon(delta, eps_error=eps_error))
        return float(acc.get_epsilon(delta, alphas=_RDP_ORDERS))


def _pld_poisson_epsilon(z: float, q: float, steps: int, delta: float, interval) -> float:
    dpa = _dp_accounting()
    from dp_accounting.pld import pld_privacy_accountant

    acc = pld_privacy_accountant.PLDAccountant(
        dpa.NeighboringRelation.ADD_OR_REMOVE_ONE,
        value_discretization_interval=_PLD_DISCRETIZATION if interval is None else interval,
    )
    acc.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(z)), steps)
    return float(acc.get_epsilon(delta))


def _rdp_without_replacement_epsilon(z: float, q: float, steps: int, delta: float) -> float:
    dpa = _dp_accounting()
    from dp_accounting.rdp import rdp_privacy_accountant

    acc = rdp_privacy_accountant.RdpAccountant(
        orders=_RDP_ORDERS, neighboring_relation=dpa.NeighboringRelation.REPLACE_ONE
    )
    gaussian = dpa.GaussianDpEvent(z)
    if q < 1:
        # The event wants integer sizes; the bound depends on them only through m/n.
        ratio = Fraction(q).limit_denominator(10**9)
        event = dpa.SampledWithoutReplacementDpEvent(ratio.denominator, ratio.numerator, gaussian)
    else:
        event = gaussian
    acc.compose(event, steps)
    return float(acc.get_epsilon(delta))


def subsampled_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "prv",
    neighbouring: str = "add_remove",
    *,
    eps_error: float | None = None,
) -> float:
    """Epsilon spent by ``steps`` subsampled Gaussian releases at ``delta``.

    Each step samples records (Poisson with rate ``sample_rate`` under ``add_remove``;
    a fixed-size subset of a fraction ``sample_rate`` without replacement under
    ``replace_one``) and adds Gaussian noise of std ``noise_multiplier`` times the
    sensitivity. The result is an upper bound on the epsilon of the composition (every
    accountant used rounds pessimistically); ``noise_multiplier = 0`` gives ``inf``.
    ``eps_error`` is the absolute error allowed in epsilon: PRV's ``eps_error`` or PLD's
    discretization interval (``None``: the module defaults; ignored by RDP).
    Under ``replace_one`` with ``prv``/``pld`` and ``sample_rate < 1`` the answer is that
    of the tight dominating pair (module docstring), i.e. the Poisson add/remove one.
    """
    z = check_noise_multiplier(noise_multiplier)
    q = check_sample_rate(sample_rate)
    steps = check_steps(steps)
    delta = check_delta(delta)
    check_supported(accountant, neighbouring, subsampled=q < 1)
    if z == 0:
        return math.inf
    if neighbouring == "replace_one" and accountant != "rdp":
        # q = 1: both relations give N(0, z^2) vs N(1, z^2) once z is scaled to the
        # relation's own sensitivity. q < 1: sampling m of n without replacement under
        # substitution is dominated by ((1-q) N(0, z^2) + q N(1, z^2), N(0, z^2)) (Zhu,
        # Dong & Wang 2022), the Poisson add/remove pair. Either way the add/remove
        # computation at the same (z, q) is exact for replace-one.
        neighbouring = "add_remove"
    if neighbouring == "replace_one":
        return _rdp_without_replacement_epsilon(z, q, steps, delta)
    if accountant == "rdp":
        with warnings.catch_warnings():
            # Opacus' RDP warns when the best order is the grid's edge; the bound is still
            # valid, only looser, and the grid above already reaches order 1024.
            warnings.filterwarnings("ignore", message="Optimal order is the")
            return _opacus_epsilon("rdp", z, q, steps, delta, None)
    if accountant == "pld":
        epsilon = _pld_poisson_epsilon(z, q, steps, delta, eps_error)
        error = _PLD_DISCRETIZATION
    else:
        epsilon = _opacus_epsilon("prv", z, q, steps, delta, eps_error)
        error = _PRV_EPS_ERROR_ONE_SHOT if steps == 1 else _PRV_EPS_ERROR_MANY_STEPS
    if eps_error is None and error > _RELATIVE_PRECISION * epsilon:
        # The fixed error is more than 1% of the answer: refine with PLD (fast at any
        # grid, since small epsilons mean small losses) and keep the better valid bound.
        interval = max(_RELATIVE_PRECISION * epsilon, _FINEST_PLD_DISCRETIZATION)
        epsilon = min(epsilon, _pld_poisson_epsilon(z, q, steps, delta, interval))
    return epsilon
