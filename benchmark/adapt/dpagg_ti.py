"""DPAgg-TI (``method=dpagg_ti``): a DP noisy mean of per-image textual-inversion embeddings.

METHODS.md, section DPAgg-TI, steps 1-6:

1. per-image TI: image ``i`` learns its own row ``v_i`` (:func:`train_per_image_embeddings`);
2. bound: ``u_i = v_i`` (or ``v_i - v_init`` with ``center``) mapped to norm at most ``R``
   (``normalize``: ``R u/|u|``; ``clip``: ``u min(1, R/|u|)``);
3. subsample ``m`` of ``n`` exactly as the privacy report requires;
4. release ``u* = (1/m) sum_{i in S} u_i + N(0, sigma^2 I)``, ``sigma`` from
   :func:`benchmark.privacy.calibrate_noisy_mean`;
5. optionally rescale ``u*`` to norm ``R`` (post-processing), add ``v_init`` back if centred;
6. bind ``u*`` to the dataset's placeholder.

Steps 2-5 are :func:`release_embedding`, a pure function the tests audit directly.

Step 1 is :mod:`benchmark.adapt.per_image_ti` (batched per-image TI equals independent runs).

**Randomness of the release.** The subsample and the noise must be secret: anyone who can
recompute them can subtract the noise. They are drawn from numpy's Philox4x64-10, a
counter-based generator, under a 128-bit key from the OS (``secrets``;
:func:`benchmark.privacy.randomness.release_key`) unless ``mechanism_seed`` is set, which
makes runs reproducible but the release non-private against whoever knows the seed
(reported as ``privacy/mechanism_randomness: seeded`` with a warning).

The per-image embeddings are private and noiseless: they live only in the owner-only
cache (:mod:`benchmark.adapt.embedding_cache`); nothing computed from them other than
the DP release is logged, reported or written to the run directory.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from benchmark.config import ConfigError, PrivacyConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.lightning import distributed
from benchmark.adapt.base import (Adaptation, AdaptationMethod, RunContext, check_positive,
                                   write_artifact)
from benchmark.adapt.embedding_cache import EmbeddingCache, cache_key, model_identity
from benchmark.adapt.per_image_ti import OPTIMIZER, train_per_image_embeddings
from benchmark.adapt.textual_inversion import resolve_templates
from benchmark.models.backbone import Backbone
from benchmark.privacy import PrivacyReport, calibrate_noisy_mean, sensitivity_of_mean
from benchmark.privacy.accountants import ACCOUNTANTS, NEIGHBOURING
from benchmark.privacy.randomness import check_mechanism_seed, release_key, release_rng
from benchmark.privacy.validation import (check_delta, check_epsilon, check_public_divisor, check_radius,
                                          check_subsample)

log = logging.getLogger(__name__)

BOUNDS = ("normalize", "clip")


# ----------------------------------------------------------------------------- steps 2-5


def bound_embeddings(vectors: torch.Tensor, radius: float, bound: str = "normalize") -> torch.Tensor:
    """Map each row to norm at most ``radius``: ``normalize`` (``R v/|v|``) or ``clip``.

    A zero row stays zero under ``normalize`` (it has no direction; its norm is within
    the bound either way).
    """
    norms = vectors.norm(dim=-1, keepdim=True)
    if bound == "normalize":
        return vectors * (radius / norms.clamp_min(torch.finfo(vectors.dtype).tiny))
    if bound == "clip":
        return vectors * torch.clamp(radius / norms.clamp_min(torch.finfo(vectors.dtype).tiny), max=1.0)
    raise ConfigError(f"method.bound must be one of {BOUNDS}, got {bound!r}")


def draw_subset(n: int, m: int, sampling: str, rng: np.random.Generator) -> torch.Tensor:
    """Indices of the records in the release, drawn the way ``PrivacyReport.sampling`` says.

    ``none``: all ``n``; ``without_replacement``: a uniform subset of exactly ``m``;
    ``poisson``: each record independently with probability ``m/n``.
    """
    if sampling == "none":
        return torch.arange(n)
    if sampling == "without_replacement":
        return torch.from_numpy(np.sort(rng.permutation(n)[:m]))
    if sampling == "poisson":
        return torch.from_numpy(np.flatnonzero(rng.random(n) < m / n))
    raise ValueError(f"unknown sampling scheme {sampling!r}")


def release_embedding(embeddings: torch.Tensor, report: PrivacyReport, radius: float, m: int, *,
                      bound: str = "normalize", center: Optional[torch.Tensor] = None, rescale: bool = False,
                      rng: np.random.Generator) -> torch.Tensor:
    """DPAgg-TI steps 2-5: the DP release ``u*`` from the ``n x D`` per-image embeddings.

    ``report`` must come from ``calibrate_noisy_mean(..., radius, n, m, ...)``: its noise
    ``report.sigma`` is used as is; a non-finite row is replaced by zero (centred: the
    initializer row) before bounding; and the subset is drawn exactly as
    ``report.sampling`` requires. The sum is divided by the public ``m`` (never by the
    size of a Poisson sample). ``center`` (the initializer row) is subtracted before
    bounding and added back after the noise; ``rescale`` sets the noisy (centred) mean to
    norm ``radius``, post-processing that costs no privacy. The subset and the noise are
    drawn from ``rng`` (the release's Philox generator, :func:`release_rng`), subset first.
    """
    n = embeddings.shape[0]
    expected = sensitivity_of_mean(radius, m, report.neighbouring)
    if not math.isclose(report.sensitivity, expected, rel_tol=1e-9) or not math.isclose(report.sample_rate, m / n):
        # A report for other (R, m, n) would silently give the wrong noise.
        raise ValueError(f"privacy report (sensitivity {report.sensitivity}, q {report.sample_rate}) does not match "
                         f"radius={radius}, m={m}, n={n} (sensitivity {expected}, q {m / n})")
    u = embeddings.detach().to(torch.float64)
    if center is not None:
        u = u - center.detach().to(torch.float64)
    # A non-finite row (one image's training diverged) would make the whole release NaN, an
    # event that depends on one record and lies outside the sensitivity bound: it counts as
    # the data-independent zero (the initializer row when centring). Nothing reports how many.
    u = torch.where(torch.isfinite(u).all(dim=-1, keepdim=True), u, torch.zeros_like(u))
    u = bound_embeddings(u, radius, bound)
    subset = draw_subset(n, m, report.sampling, rng)
    release = u[subset].sum(dim=0) / m
    if report.sigma > 0:
        release = release + report.sigma * torch.from_numpy(rng.standard_normal(tuple(release.shape)))
    if rescale:
        release = release * (radius / release.norm().clamp_min(torch.finfo(release.dtype).tiny))
    if center is not None:
        release = release + center.detach().to(torch.float64)
    return release.to(embeddings.dtype)


def default_radius(backbone: Backbone) -> float:
    """``R`` when ``method.clip_radius`` is null: ``model.embedding_radius`` if the model sets
    one, else the vocabulary's mean row norm (METHODS.md)."""
    return backbone.embedding_radius or vocabulary_mean_norm(backbone)


def vocabulary_mean_norm(backbone: Backbone) -> float:
    """Mean L2 norm of the text encoder's token-embedding rows (call before adding tokens)."""
    weight = backbone.text_encoder.get_input_embeddings().weight.detach().float()
    return float(weight.norm(dim=1).mean())


# ----------------------------------------------------------------------------- the method


@dataclass(kw_only=True)
class DPAggTI(AdaptationMethod):
    """``method=dpagg_ti``: per-image TI, bounded, subsampled, Gaussian noisy mean (METHODS.md).

    Every field comes from ``conf/method/dpagg_ti.yaml``, the one place defaults live.
    Released: the noisy mean ``u*`` alone (``learned_embeds.safetensors``), covered by
    ``privacy``; the per-image rows stay in the owner-only cache.
    """

    name: str
    max_steps: int  # TI steps per image (all images step together)
    batch_size: int  # draws (template, noise, timestep) per image per step
    learning_rate: float
    templates: Optional[list[str]]
    chunk_images: Optional[int]  # images per forward pass; None: all at once
    bound: str
    clip_radius: Optional[float]  # None: model.embedding_radius, else the mean norm of the vocabulary's rows
    center: bool
    subsample_size: Optional[int]  # None: m = n
    neighbouring: str
    rescale_output: bool
    cache_dir: Optional[str]  # None: <cache root>/embeddings
    mechanism_seed: Optional[int]  # None: secret (OS) randomness for subsample and noise
    private = True

    def check(self, privacy: PrivacyConfig) -> None:
        """Validate every setting that does not need the data, before anything is loaded."""
        check_epsilon(privacy.epsilon)  # finite epsilon is allowed: this method is DP
        check_delta(privacy.delta)
        super().check(privacy)
        if privacy.accountant not in ACCOUNTANTS:
            raise ConfigError(f"privacy.accountant must be one of {ACCOUNTANTS}, got {privacy.accountant!r}")
        check_positive(self.max_steps, "method.max_steps", integer=True)
        check_positive(self.batch_size, "method.batch_size", integer=True)
        if self.chunk_images is not None:
            check_positive(self.chunk_images, "method.chunk_images", integer=True)
        if self.subsample_size is not None:
            check_positive(self.subsample_size, "method.subsample_size", integer=True)
        check_positive(self.learning_rate, "method.learning_rate")
        if self.bound not in BOUNDS:
            raise ConfigError(f"method.bound must be one of {BOUNDS}, got {self.bound!r}")
        if self.neighbouring not in NEIGHBOURING:
            raise ConfigError(f"method.neighbouring must be one of {NEIGHBOURING}, got {self.neighbouring!r}")
        # Add/remove changes n: the mean's divisor must be public (a fixed m), never the private n.
        check_public_divisor(self.neighbouring, self.subsample_size)
        if self.clip_radius is not None:
            check_radius(self.clip_radius, key="method.clip_radius")
        check_mechanism_seed(self.mechanism_seed)

    def plan(self, backbone: Backbone, data: BenchmarkDataset,
             privacy: PrivacyConfig) -> tuple[int, int, float, PrivacyReport]:
        """``(n, m, R, report)``: every check that needs the data, and the noise calibration.

        Runs before any training, so bad input fails fast; call it before placeholder
        tokens are added (the default ``R`` is the vocabulary's mean row norm).
        """
        n = len(data.adapt)
        if n < 2:
            raise ConfigError(
                f"method=dpagg_ti needs at least 2 adaptation images, dataset '{data.name}' has {n} "
                "(dataset.max_adapt_images / dataset.world.num_adapt); a mean of one image is that image's embedding"
            )
        m = n if self.subsample_size is None else self.subsample_size
        m, n = check_subsample(m, n)
        radius = check_radius(self.clip_radius if self.clip_radius is not None else default_radius(backbone),
                              key="method.clip_radius")
        report = calibrate_noisy_mean(privacy.epsilon, privacy.delta, radius, n, m, self.neighbouring,
                                      privacy.accountant)
        return n, m, radius, report

    def cache_material(self, identity: dict, data: BenchmarkDataset, ctx: RunContext, templates: list[str]) -> dict:
        """Everything the per-image embeddings depend on (the cache key is its hash)."""
        return {
            "model": identity, "dataset": data.content_hash, "num_images": len(data.adapt),
            "templates": list(templates), "initializer": data.config.concept.initializer_token, "seed": ctx.seed,
            "ti": {"steps": self.max_steps, "batch_size": self.batch_size, "learning_rate": float(self.learning_rate),
                   "optimizer": OPTIMIZER},
            "precision": ctx.strategy.precision,
        }

    def per_image_embeddings(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext, templates: list[str],
                             init: torch.Tensor, identity: dict) -> tuple[torch.Tensor, bool, float]:
        """``(n x D embeddings, cache hit, training seconds)``: from the cache, else trained and cached."""
        material = self.cache_material(identity, data, ctx, templates)
        key = cache_key(material)
        cache = EmbeddingCache(self.cache_dir)
        shape = (len(data.adapt), init.shape[0])
        # Data-parallel: rank 0's cache decides for all ranks (other nodes may not share it).
        cached = distributed.broadcast_object(cache.load(key, shape) if distributed.rank() == 0 else None)
        if cached is not None:
            log.info("dpagg_ti: per-image embeddings from the cache; nothing to train")  # no key: data-derived
            return cached, True, 0.0
        start = time.perf_counter()
        # Each rank trains a shard of the images (image i on rank i mod world size). Image
        # i's draws depend only on (seed, i, step), so the shards' rows equal the rows of
        # one batched run over all images (up to the rounding of batched kernels).
        n, rank, world = len(data.adapt), distributed.rank(), distributed.world_size()
        mine = list(range(rank, n, world))
        mu, sd = backbone.encode_images(data.adapt.images)  # all, then the shard: the same latents as one process
        if mine:
            rows = train_per_image_embeddings(
                backbone, mu[mine], sd[mine], [data.adapt.captions[i] for i in mine], mine, templates, init,
                steps=self.max_steps, learning_rate=float(self.learning_rate), batch_size=self.batch_size,
                seed=ctx.seed, make_trainer=ctx.make_trainer, chunk_images=self.chunk_images,
                devices=distributed.this_rank_device(ctx.strategy.accelerator))
        else:  # more ranks than images
            rows = torch.empty((0, init.shape[0]))
        if world > 1:
            gathered = torch.empty((n, init.shape[0]), dtype=rows.dtype)
            for ids, part in distributed.all_gather_objects((mine, rows)):
                gathered[ids] = part
            rows = gathered
        seconds = time.perf_counter() - start
        if distributed.rank() == 0:
            cache.save(key, rows, {"material": material})
        log.info("dpagg_ti: trained %d per-image embeddings in %.1f s; cached", len(rows), seconds)
        return rows, False, seconds

    def adapt(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Adaptation:
        n, m, radius, report = self.plan(backbone, data, ctx.privacy)
        identity = model_identity(backbone)  # before any token is added
        concept = data.config.concept
        # The dataset's placeholder first, so it has the same id whether or not per-image
        # tokens are added after it (cache miss vs hit).
        _, init = backbone.add_placeholder_tokens([concept.placeholder], concept.initializer_token)
        templates = resolve_templates(self.templates, data)
        rows, hit, train_s = self.per_image_embeddings(backbone, data, ctx, templates, init, identity)

        private = not math.isinf(report.epsilon)
        key, randomness = release_key(self.mechanism_seed, private, "the subsample and the noise")
        released = release_embedding(rows, report, radius, m, bound=self.bound,
                                     center=init if self.center else None, rescale=self.rescale_output,
                                     rng=release_rng(key, "dpagg-ti")).float()
        # Data-parallel: one release (rank 0's noise), the same embedding on every rank.
        released = distributed.broadcast_object(released)
        path = ctx.output_dir / "learned_embeds.safetensors"
        write_artifact({concept.placeholder: released}, path)  # the DP release only

        privacy = {**report.as_dict(), "private": private, "mechanism_randomness": randomness}
        if not private:
            privacy["delta"] = 0.0  # no guarantee claimed, as for the non-private methods
        return Adaptation(
            placeholder=concept.placeholder,
            embeddings={concept.placeholder: released},
            privacy=privacy,
            # Only public settings and functions of the release: nothing about single images.
            metrics={"adapt/num_images": n, "adapt/subsample_size": m, "adapt/clip_radius": radius,
                     "adapt/released_norm": float(released.norm()), "adapt/cache_hit": int(hit),
                     "adapt/per_image_train_s": round(train_s, 3), "adapt/per_image_steps": self.max_steps},
        )
