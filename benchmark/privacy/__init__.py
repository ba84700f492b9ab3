"""Differential-privacy mechanisms, calibration, accountants and audits.

Public API:

* :mod:`.gaussian` -- the analytic Gaussian mechanism: :func:`gaussian_delta`,
  :func:`calibrate_gaussian_sigma`, :func:`gaussian_epsilon`.
* :mod:`.accounting` -- :class:`PrivacyReport`, :func:`sensitivity_of_mean`,
  :func:`calibrate_noisy_mean` (DPAgg-TI), :func:`noise_multiplier_for_sgd` and
  :func:`epsilon_spent` (DP-SGD).
* :mod:`.accountants` -- which library computes each subsampled epsilon (replace-one
  subsampling through its tight dominating pair), at 1% relative precision.
* :mod:`.solve` -- the noise-multiplier solver, with its 1e-9 safety margin.
* :mod:`.validation` -- input checks naming config keys; :func:`check_delta_vs_n`,
  :func:`check_public_divisor` (add/remove needs a public ``m``).
* :mod:`.randomness` -- secret or configured seeds; 128-bit Philox keys for releases.
* :mod:`.audit` -- :func:`audit_epsilon_lower_bound` / :func:`audit_sampler`: split
  (select, then bound) empirical lower bounds on epsilon, and their ceiling.
* :mod:`.audit_releases` -- worst-case releases of DPAgg-TI and DP-SGD, with planted bugs.
* :mod:`.tables` -- the tables in ``results/privacy_*.md``.
"""

from .accountants import ACCOUNTANTS, NEIGHBOURING
from .accounting import (
    PrivacyReport,
    calibrate_noisy_mean,
    epsilon_spent,
    noise_multiplier_for_sgd,
    sensitivity_of_mean,
)
from .audit import AuditResult, audit_ceiling, audit_epsilon_lower_bound, audit_sampler, releases_for_ceiling
from .gaussian import calibrate_gaussian_sigma, gaussian_delta, gaussian_epsilon
from .validation import PrivacyWarning, check_delta_vs_n, check_public_divisor

__all__ = [
    "ACCOUNTANTS",
    "NEIGHBOURING",
    "AuditResult",
    "PrivacyReport",
    "PrivacyWarning",
    "audit_ceiling",
    "audit_epsilon_lower_bound",
    "audit_sampler",
    "calibrate_gaussian_sigma",
    "calibrate_noisy_mean",
    "check_delta_vs_n",
    "check_public_divisor",
    "epsilon_spent",
    "gaussian_delta",
    "gaussian_epsilon",
    "noise_multiplier_for_sgd",
    "releases_for_ceiling",
    "sensitivity_of_mean",
]
