"""DP-SGD methods (METHODS.md, "DP-SGD baselines"): settings, checks, calibration, one training run.

:class:`DPSGDBase` is what every DP-SGD method shares; a method is a small subclass that
says *what* is trained and *on what*, through four hooks:

* :meth:`DPSGDBase.prepare` makes exactly the parameters to train trainable (required);
* :meth:`DPSGDBase.training_dataset`: the examples, tuples ``(latent mean, latent std,
  prompt ids, ...)``; by default one per adaptation image, its prompt drawn from the
  templates with ``{}`` filled by :meth:`DPSGDBase.placeholder_token`;
* :meth:`DPSGDBase.per_example_loss`: the criterion ``(prediction, target) -> loss`` with
  Opacus' ``reduction`` attribute; by default the denoising MSE;
* :attr:`DPSGDBase.module_class` / :meth:`DPSGDBase.denoiser`: the LightningModule and
  the model Opacus wraps, for objectives that draw or predict differently.

Whatever the hooks return, the base keeps the guarantee: with a finite
``privacy.epsilon`` the steps are Poisson-sampled at ``q = 1 / ceil(n / batch_size)``
(Opacus' convention: an epoch is ``1/q`` steps; ``steps = epochs / q``), every example's
gradient is clipped to ``max_grad_norm``, and Gaussian noise ``z * max_grad_norm`` is
added once per step with ``z`` solved by :func:`benchmark.privacy.noise_multiplier_for_sgd`
for the target ``(epsilon, delta)``; :meth:`DPSGDBase.privacy_of` reports the epsilon of
the steps actually taken and refuses to report one above the target. An example must be
one private record (one adaptation image): clipping bounds its whole contribution.
``privacy.epsilon=inf`` runs the same module without clipping or noise.

**Data parallel.** Under Lightning ``strategy=ddp`` the per-example model is wrapped in
Opacus' ``DPDDP`` before ``make_private``, which then builds Opacus'
``DistributedDPOptimizer`` and a distributed Poisson loader: each rank clips its own
examples, only rank 0 adds noise to its sum, the sums are all-reduced and divided by the
*global* expected batch size, so the noise enters once per step and every rank applies
the same update. Lightning's own DDP gradient all-reduce still runs in ``backward``, but
on the unclipped gradients the DP optimizer then overwrites: wasted work, not a leak.
Ghost clipping runs two backward passes per step, which Lightning's DDP reducer does not
allow: ``ghost`` with more than one process is refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar, Optional

from torch import nn
from torch.utils.data import Dataset

from benchmark.adapt.base import AdaptationMethod, RunContext, check_positive
from benchmark.adapt.dpsgd.module import Denoiser, DPSGDModule, PerExampleMSE
from benchmark.adapt.dpsgd.opacus_glue import (GRAD_SAMPLE_MODES, DPSettings, check_opacus_compatible,
                                          check_trainer_compatible)
from benchmark.adapt.textual_inversion import TemplatePromptDataset, resolve_templates
from benchmark.config import ConfigError, PrivacyConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.models.backbone import Backbone
from benchmark.privacy import PrivacyReport, epsilon_spent, noise_multiplier_for_sgd
from benchmark.privacy.randomness import check_mechanism_seed
from benchmark.privacy.validation import check_delta, check_delta_vs_n, check_epsilon

DP_ACCOUNTANTS = ("prv", "rdp", "pld")  # pld: dp_accounting; Opacus' engine then books with prv
OPTIMIZERS = ("adamw", "sgd")


def sample_rate_and_steps(n: int, batch_size: int, epochs: int) -> tuple[float, int, int]:
    """``(q, steps per epoch, steps)``: Opacus' convention ``q = 1/ceil(n/B)``, ``1/q`` steps an epoch.

    ``batch_size`` is the *global* expected batch (all ranks together).
    """
    per_epoch = max(1, math.ceil(n / batch_size))
    return 1.0 / per_epoch, per_epoch, per_epoch * epochs


class LatentPromptDataset(Dataset):
    """``(latent mean, latent std, prompt ids)`` tuples: Opacus' empty-batch collate needs tuples."""

    def __init__(self, inner: TemplatePromptDataset):
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        item = self.inner[i]
        return item["mu"], item["sd"], item["input_ids"]


@dataclass(kw_only=True)
class DPSGDBase(AdaptationMethod):
    """What every DP-SGD method shares: settings, checks, calibration, training (see the module docstring).

    Every field comes from the method's YAML (``conf/method/*.yaml``), the one place
    defaults live.
    """

    name: str
    epochs: int
    batch_size: int  # expected global Poisson batch
    learning_rate: float
    optimizer: str
    max_grad_norm: float
    grad_sample_mode: str
    max_noise_multiplier: float
    epsilon_every_n_epochs: Optional[int]  # None: about 10 times a run, and after the last epoch
    mechanism_seed: Optional[int]
    templates: Optional[list[str]]
    private = True
    module_class: ClassVar[type[DPSGDModule]] = DPSGDModule

    # --- hooks

    def prepare(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> None:
        """Make the parameters to train trainable (and nothing else); set what ``adapt`` needs.

        Called with every backbone parameter frozen, before the model is checked for Opacus.
        """
        raise NotImplementedError(f"{type(self).__name__} must say which parameters it trains")

    def placeholder_token(self, data: BenchmarkDataset) -> str:
        """What the default training prompts put where a template has ``{}``."""
        return data.config.concept.placeholder

    def training_dataset(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Dataset:
        """The examples, one per private record: tuples ``(latent mean, latent std, prompt ids, ...)``."""
        templates = resolve_templates(self.templates, data)
        n = len(data.adapt)
        return LatentPromptDataset(TemplatePromptDataset(backbone, data, templates, [self.placeholder_token(data)],
                                                         [0] * n, ctx.seed))

    def per_example_loss(self) -> nn.Module:
        """The criterion ``(prediction, target) -> loss`` with a ``reduction`` attribute (Opacus)."""
        return PerExampleMSE()

    def denoiser(self, backbone: Backbone) -> nn.Module:
        """The model Opacus wraps: ``(noisy latents, timesteps, prompt ids) -> prediction``."""
        return Denoiser(backbone.text_encoder, backbone.unet)

    # --- checks and calibration

    def check(self, privacy: PrivacyConfig) -> None:
        """Every setting that does not need the data; runs before anything is loaded."""
        check_epsilon(privacy.epsilon)
        check_delta(privacy.delta)
        super().check(privacy)
        check_positive(self.epochs, "method.epochs", integer=True)
        check_positive(self.batch_size, "method.batch_size", integer=True)
        check_positive(self.learning_rate, "method.learning_rate")
        check_positive(self.max_grad_norm, "method.max_grad_norm", why=" (the per-example clipping norm)")
        check_positive(self.max_noise_multiplier, "method.max_noise_multiplier")
        if self.epsilon_every_n_epochs is not None:
            check_positive(self.epsilon_every_n_epochs, "method.epsilon_every_n_epochs", integer=True)
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise ConfigError(f"method.grad_sample_mode must be one of {GRAD_SAMPLE_MODES}, got "
                              f"{self.grad_sample_mode!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"method.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if privacy.is_private and privacy.accountant not in DP_ACCOUNTANTS:
            raise ConfigError(f"privacy.accountant must be one of {DP_ACCOUNTANTS} for DP-SGD, got "
                              f"{privacy.accountant!r}")
        check_mechanism_seed(self.mechanism_seed)

    def calibrate(self, n: int, privacy: PrivacyConfig) -> PrivacyReport:
        """The noise multiplier for the target ``(epsilon, delta)`` at this ``n``, batch and epochs."""
        q, per_epoch, steps = sample_rate_and_steps(n, self.batch_size, self.epochs)
        if privacy.is_private:
            check_delta_vs_n(privacy.delta, n)
        if privacy.is_private and epsilon_spent(self.max_noise_multiplier, q, steps, privacy.delta,
                                                privacy.accountant) > float(privacy.epsilon):
            raise ConfigError(
                f"privacy.epsilon={privacy.epsilon} cannot be reached with method.epochs={self.epochs} and "
                f"method.batch_size={self.batch_size} on n={n} images ({steps} steps at q={q:.4g}): even noise "
                f"multiplier method.max_noise_multiplier={self.max_noise_multiplier:g} spends more. Lower "
                f"method.epochs (fewer noisy steps; or a smaller method.batch_size, hence a smaller q), raise "
                f"privacy.epsilon, or raise method.max_noise_multiplier if you really want that much noise")
        try:
            report = noise_multiplier_for_sgd(privacy.epsilon, privacy.delta, q, steps, privacy.accountant,
                                              clip_norm=self.max_grad_norm)
        except ValueError as err:
            raise ConfigError(f"{err} (method.epochs={self.epochs}, method.batch_size={self.batch_size}, "
                              f"n={n}: {steps} steps at q={q:.4g})") from None
        if report.noise_multiplier > self.max_noise_multiplier:
            raise ConfigError(
                f"privacy.epsilon={privacy.epsilon} cannot be reached usefully with method.epochs={self.epochs} and "
                f"method.batch_size={self.batch_size} on n={n} images ({steps} steps at q={q:.4g}): it needs noise "
                f"multiplier {report.noise_multiplier:.3g} > method.max_noise_multiplier={self.max_noise_multiplier:g}."
                f" Lower method.epochs (fewer noisy steps), raise privacy.epsilon, or raise method.max_noise_multiplier"
                f" if you really want this much noise")
        return report

    # --- training and reporting

    def train(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> tuple[DPSGDModule, PrivacyReport]:
        """Checks, calibration, then one Lightning fit; returns the module and the privacy report."""
        n = len(data.adapt)
        if ctx.privacy.is_private:
            check_trainer_compatible(ctx.strategy, self.grad_sample_mode)
        report = self.calibrate(n, ctx.privacy)  # before any training: bad budgets fail fast
        for p in backbone.text_encoder.parameters():
            p.requires_grad_(False)
        for p in backbone.unet.parameters():
            p.requires_grad_(False)
        self.prepare(backbone, data, ctx)
        denoiser = self.denoiser(backbone)
        if ctx.privacy.is_private:
            check_opacus_compatible(denoiser, self.grad_sample_mode)
        dataset = self.training_dataset(backbone, data, ctx)
        if len(dataset) != n:  # the accounting's n and q are those of the adaptation split
            raise RuntimeError(f"{type(self).__name__}.training_dataset has {len(dataset)} examples, the "
                               f"adaptation split {n}: DP-SGD needs one example per private record")
        dp = None
        if ctx.privacy.is_private:
            dp = DPSettings(noise_multiplier=report.noise_multiplier, max_grad_norm=float(self.max_grad_norm),
                            sample_rate=report.sample_rate, grad_sample_mode=self.grad_sample_mode,
                            accountant=ctx.privacy.accountant, delta=float(ctx.privacy.delta),
                            mechanism_seed=self.mechanism_seed)
        module = self.module_class(denoiser, backbone.scheduler, dataset, batch_size=self.batch_size,
                                   learning_rate=float(self.learning_rate), optimizer=self.optimizer, dp=dp,
                                   seed=ctx.seed, log_loss=dp is None, criterion=self.per_example_loss())
        overrides = dict(max_epochs=int(self.epochs), stage="adapt")
        if dp is not None:
            overrides["use_distributed_sampler"] = False  # the Poisson loader shards itself
        module.epsilon_every = int(self.epsilon_every_n_epochs or max(1, math.ceil(self.epochs / 10)))
        trainer = ctx.make_trainer(max_steps=report.steps, **overrides)
        trainer.fit(module)
        return module, report

    def privacy_of(self, module: DPSGDModule, report: PrivacyReport) -> dict:
        """The ``privacy/*`` entries: epsilon for the steps actually taken (<= the target)."""
        if module.dp is None:
            return {"epsilon": math.inf, "delta": 0.0, "private": False, "steps": module.steps_taken}
        spent = module.epsilon_so_far()
        if not spent <= report.target_epsilon * (1 + 1e-9):
            raise RuntimeError(f"DP-SGD spent epsilon {spent} above the target {report.target_epsilon}")
        randomness = "secret" if self.mechanism_seed is None else "seeded"  # warned about in make_private
        return {**report.as_dict(), "epsilon": spent, "steps": module.steps_taken, "private": True,
                "max_grad_norm": float(self.max_grad_norm), "grad_sample_mode": self.grad_sample_mode,
                "mechanism_randomness": randomness, "opacus_steps": module.opacus_steps()}

    def training_metrics(self, module: DPSGDModule) -> dict:
        """``adapt/*`` entries every DP-SGD method reports: public settings and the epsilon trajectory."""
        return {"adapt/steps": module.steps_taken, "adapt/epochs": int(self.epochs),
                "adapt/epsilon_by_epoch": json.dumps(module.epsilon_history)}
