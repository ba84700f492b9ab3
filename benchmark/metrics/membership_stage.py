"""The membership-inference stage (``eval.membership_inference.enabled``): evaluation only.

After evaluation, on rank 0, it attacks the run's release (:mod:`benchmark.metrics.membership`:
the ``loss``, ``loss_calibrated`` and ``similarity`` attacks) with the dataset's adaptation
images as members and its held-out images as non-members,
writes the per-candidate scores to ``privacy_eval/mia_scores.jsonl``
(:mod:`benchmark.privacy.mia_scores`) and returns the ``privacy/mia_*`` figures
(:mod:`benchmark.privacy.mia_stats`), declared in :mod:`benchmark.metrics.catalog` as read
from private data: ``metrics.json`` lists them under ``evaluation_only``.

It needs what evaluation does not: the backbone with the artifact bound and the method
(its training prompt). The calibrated attack's reference model is that same backbone with
the release switched off for one more loss pass (learned tokens read their initializer's
row, adapters disabled), not a second copy loaded. It runs on the evaluation device
(``EvalContext.device``, the run's ``distributed.rank_device``), where the backbone already is.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Optional

from benchmark.adapt.base import Adaptation, AdaptationMethod
from benchmark.adapt.textual_inversion import resolve_templates
from benchmark.config import ConfigError, MembershipInferenceConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.metrics.catalog import MIA_KEYS
from benchmark.metrics.context import EvalContext
from benchmark.metrics.membership import (LossAttackDraws, attack_prompts, binds_anything, calibrated_scores,
                                          loss_scores, reference_loss_scores, similarity_scores)
from benchmark.models.backbone import Backbone
from benchmark.privacy.mia_scores import write_scores
from benchmark.privacy.mia_stats import membership_figures
from benchmark.sampling.generations import Generations

log = logging.getLogger(__name__)


def evaluation_only_keys(cfg: MembershipInferenceConfig) -> list[str]:
    """The stage's keys (all read private data) when it is enabled, else none."""
    return sorted(k.name for k in MIA_KEYS) if cfg.enabled else []


def check_membership_inference(cfg: MembershipInferenceConfig, backbone: Backbone, data: BenchmarkDataset) -> None:
    """Refuse, before any training, a stage that cannot run on this model and dataset."""
    if not cfg.enabled:
        return
    horizon = int(backbone.scheduler.config.num_train_timesteps)
    late = [t for t in cfg.timesteps if t >= horizon]
    if late:
        raise ConfigError(f"eval.membership_inference.timesteps {late} are not below the scheduler's "
                          f"num_train_timesteps={horizon}")
    if len(data.heldout) == 0 or len(data.adapt) == 0:
        raise ConfigError(f"eval.membership_inference.enabled=true needs member and held-out images; dataset "
                          f"{data.name!r} has {len(data.adapt)} and {len(data.heldout)} (raise "
                          "dataset.world.num_heldout)")
    if shared_images(data):
        # A member among the non-members is scored both ways: the rates would mean nothing.
        raise ConfigError(f"eval.membership_inference.enabled=true needs held-out images distinct from the "
                          f"adaptation images; dataset {data.name!r} has {shared_images(data)} held-out images that "
                          "are also adaptation images (a memorization set's held-out split is its adaptation "
                          "split): set eval.membership_inference.enabled=false")


def shared_images(data: BenchmarkDataset) -> int:
    """How many held-out images are byte-identical to an adaptation image."""
    if data.heldout is data.adapt:
        return len(data.adapt)
    members = {hashlib.sha256(image.numpy().tobytes()).digest() for image in data.adapt.images}
    return sum(hashlib.sha256(image.numpy().tobytes()).digest() in members for image in data.heldout.images)


def attack_template(method: AdaptationMethod, data: BenchmarkDataset) -> str:
    """The first template the method trains with (its own, else the dataset's, else the generic ones)."""
    return resolve_templates(getattr(method, "templates", None), data)[0]


def membership_inference(cfg: MembershipInferenceConfig, backbone: Backbone, data: BenchmarkDataset,
                         method: AdaptationMethod, adaptation: Adaptation, gens: Generations,
                         context: EvalContext, output_dir: Path, header: Optional[dict] = None) -> dict[str, float]:
    """Attack the release, write ``privacy_eval/mia_scores.jsonl`` and return the ``privacy/mia_*`` figures.

    The DP bound is that of the release (``adaptation.privacy``: the epsilon spent, its
    delta); a WARNING names every attack whose TPR exceeds it.
    """
    device = context.device
    template, placeholder = attack_template(method, data), method.placeholder_for(data, adaptation)
    draws = LossAttackDraws.make(cfg.timesteps, cfg.noises_per_timestep, backbone.latent_shape, cfg.noise_seed)
    learned = sorted(adaptation.embeddings)  # bound under these tokens (run.bind_embeddings)
    members, nonmembers = {}, {}
    for table, split in ((members, data.adapt), (nonmembers, data.heldout)):
        prompts = attack_prompts(split.captions, template, placeholder)
        adapted = loss_scores(backbone, split.images, prompts, draws, device, cfg.batch_size)
        if binds_anything(backbone, learned):
            reference = reference_loss_scores(backbone, split.images, prompts, draws, device, cfg.batch_size,
                                              learned, data.config.concept.initializer_token)
        else:
            # method=none: the reference model is the adapted one; reusing its scores makes the
            # calibrated scores exactly 0 on every device (a second pass could differ in rounding).
            reference = adapted
        table["loss"] = adapted.tolist()
        table["loss_calibrated"] = calibrated_scores(adapted, reference).tolist()
        table["similarity"] = similarity_scores(split.images, gens.images, context.copy_detector, device).tolist()
    epsilon, delta = float(adaptation.privacy["epsilon"]), float(adaptation.privacy["delta"])
    figures, exceeded = membership_figures(members, nonmembers, epsilon, delta)
    for attack in exceeded:
        log.warning("membership inference: the %s attack's TPR exceeds the (epsilon=%g, delta=%g) bound "
                    "TPR <= e^epsilon FPR + delta (lower Clopper-Pearson end above it): a bug or a broken "
                    "DP guarantee", attack, epsilon, delta)
    world = data.config.world
    write_scores(output_dir, {
        **(header or {}), "epsilon": epsilon, "delta": delta,
        "dataset": data.name, "dataset_world_seed": world.seed if world is not None else None,
        "template": template, "placeholder": placeholder, "timesteps": list(cfg.timesteps),
        "noises_per_timestep": cfg.noises_per_timestep, "noise_seed": cfg.noise_seed,
    }, members, nonmembers)
    return figures
