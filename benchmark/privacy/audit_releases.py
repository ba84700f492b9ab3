"""Mechanisms to audit, on worst-case neighbouring datasets, with bugs that can be planted.

Each audited release is reduced to its projection on the direction in which the two
neighbouring datasets differ. For a Gaussian release that projection is the optimal
test statistic (Neyman-Pearson), and its distribution is exactly that of the full
release's coordinate along the canary: the other coordinates are identically
distributed on both datasets and independent of it. Sampling the projection directly
keeps tens of millions of releases cheap.

* :class:`NoisyMeanRelease` -- DPAgg-TI's noisy mean of ``m`` of ``n`` embeddings of
  norm ``<= R`` under replace-one (subset without replacement) or add/remove (datasets
  of sizes ``n`` and ``n + 1``, Poisson sample, public divisor ``m``).
* :class:`LinearDPSGDRelease` -- one DP-SGD step of a linear model (torch per-example
  gradients, clipping and noise) on a dataset with and without a planted canary.

``audit_mechanism`` calibrates the noise for a target epsilon, plants a bug if asked,
and audits with enough releases for a ceiling of twice the target.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from .accounting import calibrate_noisy_mean, noise_multiplier_for_sgd
from .audit import AuditResult, audit_sampler, releases_for_ceiling

__all__ = ["NoisyMeanRelease", "LinearDPSGDRelease", "BUGS", "audit_mechanism"]

# name -> what the planted bug does (every mechanism supports "none" and the first two).
BUGS = {
    "none": "correct mechanism",
    "noise_div_10": "noise std divided by 10",
    "half_sensitivity": "noise for half the sensitivity (R/m, not 2R/m; R/(2m), not R/m)",
    "private_divisor": "add/remove mean divided by the actual count (n or n+1), not the public m",
    "no_noise": "DP-SGD: the noise term is missing",
    "clip_value": "DP-SGD: each gradient coordinate clipped to C instead of each example's norm",
}


@dataclasses.dataclass(frozen=True)
class NoisyMeanRelease:
    """Projection of ``(1/divisor) sum_{i in S} u_i + N(0, sigma^2 I)`` on the canary.

    Worst-case neighbours (the tight cases of the analyses):

    * ``replace_one``: D0 has the canary at ``+R`` and every other record at ``-R``; D1
      has the canary replaced by ``-R``. ``S`` is all records (``m == n``) or a uniform
      size-``m`` subset, which holds the canary with probability ``m/n``.
    * ``add_remove``: D0 has ``n`` records, D1 also has the canary at ``+R``. Without
      subsampling the others sit at ``-R`` (where a private divisor does most harm);
      with Poisson sampling (rate ``m/n``, public) at ``0``, the tight case.
    """

    neighbouring: str
    n: int
    m: int
    sigma: float
    radius: float = 1.0
    private_divisor: bool = False

    def draw(self, dataset: int, rng: np.random.Generator, count: int) -> np.ndarray:
        # float32 draws: twice as fast, and 1e-7 relative is far below the noise scale.
        n, m, r = self.n, self.m, self.radius
        noise = rng.standard_normal(count, dtype=np.float32) * np.float32(self.sigma)
        if self.neighbouring == "replace_one":
            # The canary (D0: +R, D1: -R) is in the subset with probability m/n; the others
            # (all at -R) fill the rest: mean = -R + inside * (canary + R) / m.
            canary = r if dataset == 0 else -r
            if m == n:
                return noise + np.float32((canary - r * (m - 1)) / m)
            inside = rng.random(count, dtype=np.float32) < np.float32(m / n)
            return noise + np.float32(-r) + inside * np.float32((canary + r) / m)
        if m == n:
            total = -r * n + (r if dataset == 1 else 0.0)
            divisor = (n + dataset) if self.private_divisor else m
            return noise + np.float32(total / divisor)
        if dataset == 0:
            return noise
        inside = rng.random(count, dtype=np.float32) < np.float32(m / n)
        return noise + inside * np.float32(r / m)


class LinearDPSGDRelease:
    """Projection on the canary of one DP-SGD step of ``nn.Linear(dim, 1, bias=False)``.

    D0: ``k`` examples whose features live on the last ``dim - canary_dim`` coordinates;
    D1: the same plus a canary whose features live on the first ``canary_dim`` ones
    only, with a gradient of norm ``gradient_scale * C`` (so clipping matters). One
    step from ``w = 0`` with squared loss, Poisson sampling at ``sample_rate``,
    per-example gradients (``torch.func``), clipping to ``clip_norm`` and noise
    ``N(0, (z C)^2 I)``; the statistic is ``u . (w0 - w1) * B / lr`` for ``u`` the
    canary's gradient direction (a public choice of the auditor). The gradients and
    clipping run in torch once; each release then draws its Poisson mask and the noise's
    component along ``u`` (the others do not touch the statistic).
    """

    def __init__(self, noise_multiplier: float, sample_rate: float, *, clip_norm: float = 1.0, dim: int = 17,
                 canary_dim: int = 16, examples: int = 8, gradient_scale: float = 10.0, bug: str = "none",
                 seed: int = 0):
        import torch

        if bug not in ("none", "noise_div_10", "no_noise", "clip_value"):
            raise ValueError(f"LinearDPSGDRelease cannot plant bug {bug!r}")
        gen = torch.Generator().manual_seed(seed)
        x = torch.zeros(examples + 1, dim, dtype=torch.float64)
        x[:examples, canary_dim:] = torch.randn(examples, dim - canary_dim, generator=gen, dtype=torch.float64)
        x[examples, :canary_dim] = 1.0 / math.sqrt(canary_dim)
        y = torch.randn(examples + 1, dtype=torch.float64, generator=gen)
        y[examples] = gradient_scale * clip_norm  # from w = 0 the canary's gradient is -y x
        grads = _per_example_gradients(torch.zeros(1, dim, dtype=torch.float64), x, y)
        if bug == "clip_value":
            clipped = grads.clamp(-clip_norm, clip_norm)  # torch.nn.utils.clip_grad_value_, per example
        else:
            norms = grads.norm(dim=1, keepdim=True)
            clipped = grads * torch.clamp(clip_norm / norms.clamp_min(1e-300), max=1.0)
        direction = grads[examples] / grads[examples].norm()
        projections = (clipped @ direction).numpy()
        self.others = projections[:examples][np.abs(projections[:examples]) > 0]
        self.canary = float(projections[examples])
        scale = {"none": 1.0, "noise_div_10": 0.1, "no_noise": 0.0, "clip_value": 1.0}[bug]
        self.noise_std = scale * noise_multiplier * clip_norm
        self.sample_rate = sample_rate

    def draw(self, dataset: int, rng: np.random.Generator, count: int) -> np.ndarray:
        q = np.float32(self.sample_rate)
        stat = rng.standard_normal(count, dtype=np.float32) * np.float32(self.noise_std)
        for value in self.others:  # empty for orthogonal data: kept for honesty
            stat += np.float32(value) * (rng.random(count, dtype=np.float32) < q)
        if dataset == 1:
            stat += np.float32(self.canary) * (rng.random(count, dtype=np.float32) < q)
        return stat


def _per_example_gradients(weight, x, y):
    """Gradient of ``0.5 (w . x_i - y_i)^2`` for every example, by ``torch.func``."""
    import torch
    from torch.func import grad, vmap

    def loss(w, xi, yi):
        return 0.5 * (torch.nn.functional.linear(xi, w).squeeze() - yi) ** 2

    return vmap(grad(loss), in_dims=(None, 0, 0))(weight, x, y).reshape(x.shape[0], -1)


def audit_mechanism(kind: str, epsilon: float, bug: str = "none", *, delta: float = 1e-5, n: int = 8,
                    m: Optional[int] = None, confidence: float = 0.95, min_releases: int = 200_000,
                    ceiling_factor: float = 2.0, selection_releases: int = 1_000_000,
                    seed: int = 0) -> tuple[AuditResult, dict]:
    """Calibrate ``kind`` for ``(epsilon, delta)``, plant ``bug``, audit; ``(result, setup)``.

    ``kind``: ``replace_one``, ``add_remove`` (sizes ``n`` and ``n + 1``, public divisor
    ``m = n``), ``replace_one_subsampled`` (``m`` of ``n`` without replacement),
    ``add_remove_subsampled`` (Poisson, rate ``m/n``) or ``dpsgd`` (one step, rate
    ``m/n``). Evaluation releases: enough for a ceiling of ``ceiling_factor * epsilon``
    and at least ``min_releases``; as many selection releases, capped at
    ``selection_releases`` (the test only has to be found there, not certified).
    """
    if m is None:
        m = n if kind in ("replace_one", "add_remove") else n // 2
    neighbouring = "add_remove" if kind.startswith("add_remove") or kind == "dpsgd" else "replace_one"
    if kind == "dpsgd":
        z = noise_multiplier_for_sgd(epsilon, delta, m / n, 1, "pld").noise_multiplier
        mechanism = LinearDPSGDRelease(z, m / n, bug=bug, seed=seed)
        setup = dict(noise_multiplier=z, sample_rate=m / n)
    else:
        if bug not in ("none", "noise_div_10", "half_sensitivity", "private_divisor"):
            raise ValueError(f"a noisy mean cannot plant bug {bug!r}")
        if bug == "private_divisor" and (neighbouring != "add_remove" or m != n):
            raise ValueError("the private-divisor bug is planted in the add/remove mean without subsampling")
        radius = 1.0
        accountant = "pld" if m < n else "prv"
        report = calibrate_noisy_mean(epsilon, delta, radius * (0.5 if bug == "half_sensitivity" else 1.0), n, m,
                                      neighbouring, accountant)
        sigma = report.sigma * (0.1 if bug == "noise_div_10" else 1.0)
        mechanism = NoisyMeanRelease(neighbouring, n, m, sigma, radius, private_divisor=bug == "private_divisor")
        setup = dict(sigma=sigma, noise_multiplier=report.noise_multiplier, sample_rate=m / n)
    releases = max(min_releases, releases_for_ceiling(ceiling_factor * epsilon, delta, confidence))
    result = audit_sampler(mechanism.draw, releases, delta, confidence,
                           selection_releases=min(releases, selection_releases), seed=seed)
    return result, dict(kind=kind, epsilon=epsilon, bug=bug, n=n, m=m, releases=releases, **setup)
