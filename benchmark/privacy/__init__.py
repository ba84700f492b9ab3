"""Differential-privacy mechanisms, calibration, accountants and audits.

Public API:

* :mod:`.gaussian` -- the analytic Gaussian mechanism: :func:`gaussian_delta`,
  :func:`calibrate_gaussian_sigma`, :func:`gaussian_epsilon`.
* :mod:`.accounting` -- :class:`PrivacyReport`, :func:`sensitivity_of_mean`,
  :func:`calibrate_noisy_mean` (DPAgg-TI), :func:`noise_multiplier_for_sgd` and
  :func:`epsilon_spent` (DP-SGD).
* :mod:`.validation` -- input checks naming config keys; :func:`check_delta_vs_n`.
* :mod:`.randomness` -- secret or configured seeds for a release's subsample and noise.
* :mod:`.audit` -- :func:`audit_epsilon_lower_bound`, an empirical lower bound on epsilon.
"""

from .accountants import ACCOUNTANTS, NEIGHBOURING
from .accounting import (
    PrivacyReport,
    calibrate_noisy_mean,
    epsilon_spent,
    noise_multiplier_for_sgd,
    sensitivity_of_mean,
)
from .audit import AuditResult, audit_epsilon_lower_bound
from .gaussian import calibrate_gaussian_sigma, gaussian_delta, gaussian_epsilon
from .validation import PrivacyWarning, check_delta_vs_n

__all__ = [
    "ACCOUNTANTS",
    "NEIGHBOURING",
    "AuditResult",
    "PrivacyReport",
    "PrivacyWarning",
    "audit_epsilon_lower_bound",
    "calibrate_gaussian_sigma",
    "calibrate_noisy_mean",
    "check_delta_vs_n",
    "epsilon_spent",
    "gaussian_delta",
    "gaussian_epsilon",
    "noise_multiplier_for_sgd",
    "sensitivity_of_mean",
]
