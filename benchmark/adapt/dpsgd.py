"""DP-SGD baselines (METHODS.md, "DP-SGD baselines"): ``dpsgd_ti``, ``dpsgd_lora`` and ``lora``.

One Lightning module, :class:`DPSGDModule`, trains whatever parameters of the text
encoder + UNet are left trainable, with the denoising loss:

* ``dpsgd_ti``: one placeholder row, its own small parameter (:class:`PlaceholderRows`):
  Opacus' ``nn.Embedding`` per-sample gradient would be a dense ``B x V x D`` tensor;
* ``dpsgd_lora`` / ``lora``: peft LoRA adapters on the UNet's attention projections
  (the DP-LDM recipe: fine-tune only attention).

With a finite ``privacy.epsilon`` the module calls Opacus' ``PrivacyEngine.make_private``
in its ``setup`` hook: Poisson sampling (``DPDataLoader``), per-example clipping to
``max_grad_norm`` and Gaussian noise ``z * max_grad_norm`` with ``z`` solved by
:func:`benchmark.privacy.noise_multiplier_for_sgd` for the target ``(epsilon, delta)``,
``q = 1 / ceil(n / batch_size)`` (Opacus' convention: an epoch is ``1/q`` steps) and
``steps = epochs / q``. The epsilon reported (per epoch and at the end) comes from the
same privacy module for the steps actually taken. ``privacy.epsilon=inf`` runs the same
module without ``make_private``: no clipping, no noise, ordinary shuffled batches.

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
import logging
import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from benchmark.config import ConfigError, PrivacyConfig, StrategyConfig
from benchmark.data.datasets import BenchmarkDataset
from benchmark.adapt.base import Adaptation, AdaptationMethod, RunContext, check_positive
from benchmark.adapt.textual_inversion import (PlaceholderEmbedding, PlaceholderRows, TemplatePromptDataset,
                                                 noisy_latents_and_target, resolve_templates)
from benchmark.models.backbone import Backbone
from benchmark.privacy import PrivacyReport, epsilon_spent, noise_multiplier_for_sgd
from benchmark.privacy.randomness import check_mechanism_seed, mechanism_seed, stream_seed
from benchmark.privacy.validation import check_delta, check_delta_vs_n, check_epsilon

log = logging.getLogger(__name__)

GRAD_SAMPLE_MODES = ("hooks", "ghost", "functorch")
DP_ACCOUNTANTS = ("prv", "rdp", "pld")  # pld: dp_accounting; Opacus' engine then books with prv
OPTIMIZERS = ("adamw", "sgd")
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
DP_STRATEGIES = ("auto", "ddp", "single_device")  # Lightning strategies DP-SGD is verified under


# ----------------------------------------------------------------------------- models


def _placeholder_rows_grad_sample(layer: PlaceholderRows, activations, backprops):
    """Per-example gradient of ``rows``: ``B x k x D`` (sum of the backprops at each row's positions)."""
    index = activations[0]
    one_hot = F.one_hot(index, layer.rows.shape[0]).to(backprops.dtype)  # B x L x k
    return {layer.rows: torch.einsum("blk,bld->bkd", one_hot, backprops)}


def _placeholder_rows_norm_sample(layer: PlaceholderRows, activations, backprops):
    """Per-example gradient norm of ``rows`` for ghost clipping (the gradient itself is small)."""
    grads = _placeholder_rows_grad_sample(layer, activations, backprops)[layer.rows]
    return {layer.rows: grads.flatten(1).norm(dim=1)}


def _register_opacus_samplers() -> None:
    from opacus.grad_sample.utils import register_grad_sampler, register_norm_sampler

    register_grad_sampler(PlaceholderRows)(_placeholder_rows_grad_sample)
    register_norm_sampler(PlaceholderRows)(_placeholder_rows_norm_sample)


_register_opacus_samplers()
# Opacus' backward hooks sit on layers whose inputs need no gradient (frozen backbone): torch
# warns that such a hook fires on output gradients only, which is all Opacus needs.
warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed with respect "
                        "to module outputs since no inputs require gradients")


class Denoiser(nn.Module):
    """Text encoder + UNet: ``(noisy latents, timesteps, prompt ids) -> prediction``.

    The module Opacus wraps; its trainable parameters are the ones DP-SGD trains.
    """

    def __init__(self, text_encoder: nn.Module, unet: nn.Module):
        super().__init__()
        self.text_encoder = text_encoder
        self.unet = unet

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.text_encoder(input_ids)[0]
        dtype = self.unet.dtype
        return self.unet(noisy.to(dtype), timesteps, encoder_hidden_states=hidden.to(dtype)).sample.float()


class PerExampleMSE(nn.Module):
    """MSE averaged over each example's elements; ``reduction`` over examples (Opacus ghost API)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_example = F.mse_loss(pred, target.float(), reduction="none").flatten(1).mean(1)
        if self.reduction == "none":
            return per_example
        # An empty Poisson batch must still backpropagate (DDP ranks step together): a sum of nothing is 0.
        if self.reduction == "sum" or len(per_example) == 0:
            return per_example.sum()
        return per_example.mean()


class LatentPromptDataset(Dataset):
    """``(latent mean, latent std, prompt ids)`` tuples: Opacus' empty-batch collate needs tuples."""

    def __init__(self, inner: TemplatePromptDataset):
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        item = self.inner[i]
        return item["mu"], item["sd"], item["input_ids"]


# ----------------------------------------------------------------------------- checks


def opacus_compatibility_errors(model: nn.Module, grad_sample_mode: str) -> list[str]:
    """Trainable layers Opacus cannot give per-example gradients for, as ``name (Type): why``.

    Opacus' own validators (BatchNorm mixes examples, ...) plus its rule that a trainable
    layer may not hold buffers (they would be updated from private data without noise).
    Ghost clipping additionally needs a norm sampler for every trainable layer.
    """
    from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import GradSampleModuleFastGradientClipping
    from opacus.utils.module_utils import trainable_modules
    from opacus.validators import ModuleValidator

    errors = []
    for err in ModuleValidator.validate(model, strict=False):
        errors.append(str(err))
    for name, module in trainable_modules(model):
        if len(list(module.buffers())) > 0:
            errors.append(f"{name} ({type(module).__name__}): a trainable layer with buffers")
        elif grad_sample_mode == "ghost" and type(module) not in GradSampleModuleFastGradientClipping.NORM_SAMPLERS:
            errors.append(f"{name} ({type(module).__name__}): no ghost-clipping norm sampler")
    return errors


def check_opacus_compatible(model: nn.Module, grad_sample_mode: str) -> None:
    """Raise a ConfigError naming every layer Opacus cannot handle, with the fixes."""
    errors = opacus_compatibility_errors(model, grad_sample_mode)
    if errors:
        listed = "; ".join(errors[:10]) + (f"; ... ({len(errors)} in all)" if len(errors) > 10 else "")
        hint = ("use method.grad_sample_mode=hooks (per-example gradients for any layer)"
                if grad_sample_mode == "ghost" else
                "freeze these layers, or replace them (opacus.validators.ModuleValidator.fix turns BatchNorm "
                "into GroupNorm), or choose method.lora_targets that avoid them")
        raise ConfigError(f"method.grad_sample_mode={grad_sample_mode}: Opacus cannot compute per-example "
                          f"gradients for these trainable layers: {listed}. Fix: {hint}")


def check_trainer_compatible(strategy: StrategyConfig, grad_sample_mode: str) -> None:
    """Refuse trainer settings that would break DP-SGD, naming the key."""
    accumulate = getattr(strategy, "accumulate_grad_batches", 1)
    if accumulate not in (None, 1):
        raise ConfigError(
            f"strategy.accumulate_grad_batches={accumulate} is incompatible with DP-SGD: each optimizer step must "
            "clip and noise one Poisson batch (accumulating batches breaks the sampling the accounting assumes); "
            "set it to 1 and raise method.batch_size instead")
    clip = getattr(strategy, "gradient_clip_val", None)
    if clip not in (None, 0, 0.0):
        raise ConfigError(
            f"strategy.gradient_clip_val={clip} is incompatible with DP-SGD: clipping the batch gradient after "
            "the DP optimizer has added noise is not what the accounting covers; DP-SGD clips each example to "
            "method.max_grad_norm: set strategy.gradient_clip_val=null")
    if strategy.strategy not in DP_STRATEGIES:
        raise ConfigError(
            f"strategy.strategy={strategy.strategy!r} is not supported with DP-SGD; use one of {DP_STRATEGIES}: "
            "ddp runs Opacus' distributed DP optimizer (clip per rank, noise once, all-reduce); other strategies "
            "(ddp_spawn does not send the trained weights back; fsdp/deepspeed shard them) would not train "
            "or account correctly")
    if grad_sample_mode == "ghost" and world_size_of(strategy) > 1:
        raise ConfigError(
            "method.grad_sample_mode=ghost with several processes is refused: ghost clipping runs two backward "
            "passes per step, which Lightning's DDP reducer does not allow; use method.grad_sample_mode=hooks")


def world_size_of(strategy: StrategyConfig) -> int:
    """Number of processes the strategy launches (devices x nodes; ``auto``/-1 count as unknown: 1)."""
    devices = strategy.devices
    if isinstance(devices, (list, tuple)):
        count = len(devices)
    elif isinstance(devices, numbers.Integral):
        count = int(devices)
    elif isinstance(devices, str) and devices.isdigit():
        count = int(devices)
    else:
        count = 1
    return max(count, 1) * max(int(strategy.num_nodes), 1)


# ----------------------------------------------------------------------------- Lightning


def _lockstep_sampler_class():
    from opacus.utils.uniform_sampler import DistributedUniformWithReplacementSampler

    class LockstepDistributedPoissonSampler(DistributedUniformWithReplacementSampler):
        """Opacus' distributed Poisson sampler, but yielding every local batch, empty ones too.

        Opacus skips a rank's empty local batch; under DDP the ranks then take different
        numbers of steps and the collectives (gradient all-reduce) fall out of step. Here
        every rank yields exactly ``num_batches`` batches: rank ``r`` keeps each record of
        its shard independently with probability ``q``, so the global batch is a Poisson
        sample of the whole set, as the accounting assumes.
        """

        def __iter__(self):
            if self.shuffle:
                g = torch.Generator().manual_seed(self.shuffle_seed + self.epoch)
                indices = torch.randperm(self.total_size, generator=g)
            else:
                indices = torch.arange(self.total_size)
            indices = indices[self.rank:self.total_size:self.num_replicas]
            for _ in range(self.num_batches):
                mask = torch.rand(self.num_samples, generator=self.generator) < self.sample_rate
                yield indices[mask.nonzero(as_tuple=False).reshape(-1)].tolist()

    return LockstepDistributedPoissonSampler


def lockstep_poisson_loader(dataset: Dataset, sample_rate: float, generator: torch.Generator) -> DataLoader:
    """A distributed Poisson loader whose ranks always take the same number of (possibly empty) batches."""
    from opacus.data_loader import dtype_safe, shape_safe, wrap_collate_with_empty
    from torch.utils.data import default_collate

    sampler = _lockstep_sampler_class()(total_size=len(dataset), sample_rate=sample_rate, generator=generator)
    first = dataset[0]
    collate = wrap_collate_with_empty(collate_fn=default_collate, batch_first=True, rand_on_empty=False,
                                      sample_empty_shapes=[(0, *shape_safe(x)) for x in first],
                                      dtypes=[dtype_safe(x) for x in first])
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)



@dataclass
class DPSettings:
    """What ``make_private`` needs; ``None`` in :class:`DPSGDModule` means non-private."""

    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    grad_sample_mode: str = "hooks"
    accountant: str = "prv"
    delta: float = 1e-5
    mechanism_seed: Optional[int] = None  # None: secret randomness for sampling and noise


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class DPSGDModule(L.LightningModule):
    """Trains the trainable parameters of ``denoiser`` with the denoising loss, DP-SGD or not.

    Manual optimisation: one optimiser step per (Poisson) batch, never accumulated. The
    batches come from :meth:`train_dataloader` (built in :meth:`setup`, once the process
    group exists). ``dp=None``: plain training, ordinary shuffled batches of ``batch_size``.
    """

    def __init__(self, denoiser: Denoiser, noise_scheduler, dataset: Dataset, *, batch_size: int,
                 learning_rate: float, optimizer: str = "adamw", dp: Optional[DPSettings] = None, seed: int = 0,
                 log_loss: bool = True):
        super().__init__()
        self.automatic_optimization = False
        self.denoiser = denoiser
        self.noise_scheduler = noise_scheduler
        self.train_set = dataset
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer_name = optimizer
        self.dp = dp
        self.seed = seed
        self.log_loss = log_loss  # False for DP runs: a loss on private data is not DP
        self.criterion = PerExampleMSE()
        self.model = denoiser  # replaced by Opacus' wrapper in setup()
        self.privacy_engine = None
        self.dp_optimizer = None
        self.loader = None
        self.epsilon_history: list[tuple[int, float]] = []  # (epoch, epsilon spent after it)
        self.epsilon_every = 1
        self.steps_taken = 0
        self.empty_steps = 0  # Poisson batches with no example on this rank

    # --- setup

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.denoiser.parameters() if p.requires_grad]

    def _base_optimizer(self) -> torch.optim.Optimizer:
        params = self.trainable_parameters()
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(params, lr=self.learning_rate)
        # No weight decay: decoupled decay would move parameters with no gradient signal.
        return torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=0.0)

    def setup(self, stage: str) -> None:
        if stage != "fit" or self.loader is not None:
            return
        rank, world = _rank_and_world()
        if self._trainer is not None and self.dp is not None:
            # Defence in depth: make_trainer overrides could still set these.
            if getattr(self.trainer, "accumulate_grad_batches", 1) != 1:
                raise ConfigError("gradient accumulation is incompatible with DP-SGD (one Poisson batch per step)")
            if getattr(self.trainer, "gradient_clip_val", None):
                raise ConfigError("trainer gradient clipping is incompatible with DP-SGD (use method.max_grad_norm)")
        optimizer = self._base_optimizer()
        if self.dp is None:
            generator = torch.Generator().manual_seed(stream_seed("dpsgd-shuffle", self.seed))
            self.loader = DataLoader(self.train_set, batch_size=min(self.batch_size, len(self.train_set)),
                                     shuffle=True, generator=generator)
            self.dp_optimizer = optimizer
            self.noise_generator = torch.Generator().manual_seed(stream_seed("dpsgd-draws", self.seed, rank))
            return
        self._make_private(optimizer, rank, world)

    def _make_private(self, optimizer: torch.optim.Optimizer, rank: int, world: int) -> None:
        from opacus import PrivacyEngine
        from opacus.data_loader import DPDataLoader
        from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP

        dp = self.dp
        base, _ = mechanism_seed(dp.mechanism_seed, private=True, what="the Poisson samples and the noise")
        # Each rank samples its shard with its own stream: shared streams would correlate inclusions.
        sampler_gen = torch.Generator().manual_seed(stream_seed("dpsgd-poisson", base, rank))
        noise_gen = torch.Generator().manual_seed(stream_seed("dpsgd-noise", base))  # only rank 0 adds noise
        self.noise_generator = torch.Generator().manual_seed(stream_seed("dpsgd-draws", self.seed, rank))
        module = DPDDP(self.denoiser) if world > 1 else self.denoiser
        if world > 1:
            loader = lockstep_poisson_loader(self.train_set, dp.sample_rate, sampler_gen)
        else:
            loader = DPDataLoader(self.train_set, sample_rate=dp.sample_rate, collate_fn=None, generator=sampler_gen)
        with warnings.catch_warnings():
            # Opacus' secure_mode needs torchcsprng; the generators above are seeded from secrets instead.
            warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
            engine = PrivacyEngine(accountant=dp.accountant if dp.accountant in ("prv", "rdp") else "prv")
            out = engine.make_private(
                module=module, optimizer=optimizer, data_loader=loader, noise_multiplier=dp.noise_multiplier,
                max_grad_norm=dp.max_grad_norm, poisson_sampling=False,  # the loader above already is Poisson
                loss_reduction="mean", grad_sample_mode=dp.grad_sample_mode, noise_generator=noise_gen,
                criterion=self.criterion,
            )
        if dp.grad_sample_mode == "ghost":
            self.model, self.dp_optimizer, self.dp_criterion, self.loader = out
        else:
            self.model, self.dp_optimizer, self.loader = out
        self.model.forbid_grad_accumulation()  # make_private skips this when it does not build the loader
        # make_private infers q = 1/len(loader); it must be the q the noise was solved for.
        if not math.isclose(1.0 / len(self.loader), dp.sample_rate, rel_tol=1e-9):
            raise RuntimeError(f"Opacus books sample rate {1 / len(self.loader)}, the noise was solved for "
                               f"{dp.sample_rate}: 1/q must be an integer")
        self.privacy_engine = engine

    def train_dataloader(self):
        return self.loader

    def configure_optimizers(self):
        return self.dp_optimizer

    # --- training

    def draws(self, batch):
        """Noisy latents, timesteps and regression target for a batch ``(mu, sd, ids, ...)``.

        Drawn from this rank's generator (ranks draw independently). Tests override it to
        give each example the same draws however the batch is split across ranks.
        """
        mu, sd = batch[0], batch[1]
        gen = self.noise_generator
        latent_noise = torch.randn(mu.shape, generator=gen)
        noise = torch.randn(mu.shape, generator=gen)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(mu),), generator=gen)
        return self.noise_targets(mu, sd, latent_noise, noise, t)

    def noise_targets(self, mu, sd, latent_noise, noise, t):
        """``(noisy latents, t, target)`` for given draws (epsilon or v-prediction)."""
        return noisy_latents_and_target(self.noise_scheduler, mu, sd, latent_noise, noise, t)

    def step_on(self, noisy, t, input_ids, target, optimizer) -> torch.Tensor:
        """One optimiser step on one batch: forward, (DP) backward, clip + noise + step, zero grads."""
        if len(noisy) == 0:
            return self._empty_step(optimizer)
        pred = self.model(noisy, t, input_ids)
        if self.dp is not None and self.dp.grad_sample_mode == "ghost":
            loss = self.dp_criterion(pred, target)  # Opacus runs its two backward passes in .backward()
            loss.backward()
        else:
            loss = self.criterion(pred, target)
            if self._trainer is not None:
                self.manual_backward(loss)
            else:
                loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        self.steps_taken += 1
        return loss.detach()

    def _empty_step(self, optimizer) -> torch.Tensor:
        """An empty Poisson batch is still a step: zero per-example gradients, noise, accounting.

        The model is not run (text encoders cannot reshape an empty batch). A zero loss
        that touches every trainable parameter still goes through ``backward`` so that DDP
        ranks stay in step (the other ranks' gradient all-reduce waits for this one); then
        each parameter gets an empty per-example gradient, which Opacus' optimizer handles.
        """
        params = self.trainable_parameters()
        loss = sum((p * 0).sum() for p in params)
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()
        if self.dp is not None and self.dp.grad_sample_mode != "ghost":
            for p in params:
                p.grad_sample = torch.zeros(0, *p.shape, dtype=p.dtype, device=p.device)
        optimizer.step()
        optimizer.zero_grad()
        self.steps_taken += 1
        self.empty_steps += 1
        return loss.detach()

    def training_step(self, batch, batch_idx):
        noisy, t, target = self.draws(batch)
        value = self.step_on(noisy, t, batch[2], target, self.optimizers())
        if self.log_loss:
            self.log("train/loss", value, prog_bar=True, on_step=True, on_epoch=False,
                     batch_size=max(len(batch[0]), 1))

    def epsilon_so_far(self) -> float:
        """Epsilon spent by the steps taken, from the suite's privacy module (inf if non-private)."""
        if self.dp is None or self.steps_taken == 0:
            return math.inf if self.dp is None else 0.0
        return epsilon_spent(self.dp.noise_multiplier, self.dp.sample_rate, self.steps_taken, self.dp.delta,
                             self.dp.accountant)

    def on_train_epoch_end(self) -> None:
        if self.dp is None:
            return
        epoch = self.current_epoch + 1 if self._trainer is not None else len(self.epsilon_history) + 1
        last = self._trainer is not None and epoch >= self.trainer.max_epochs
        if epoch % self.epsilon_every != 0 and not last:
            return  # PRV takes ~1 s a call at hundreds of steps: log every few epochs, always the last
        epsilon = self.epsilon_so_far()
        self.epsilon_history.append((epoch, epsilon))
        # Every rank computes the same value; sync_dist (a mean of equal numbers) keeps Lightning quiet.
        self.log("privacy/epsilon_spent", epsilon, on_step=False, on_epoch=True, sync_dist=True)

    def teardown(self, stage: str) -> None:
        if stage == "fit" and self.model is not self.denoiser:
            # Remove Opacus' hooks so sampling runs on the plain modules.
            inner = self.model
            if hasattr(inner, "_close"):
                inner._close()
            for m in self.denoiser.modules():  # Opacus' cleanup leaves the last captured activations behind
                for attr in ("activations", "max_batch_len"):
                    if hasattr(m, attr):
                        delattr(m, attr)
            self.model = self.denoiser

    def opacus_steps(self) -> int:
        """Optimizer steps Opacus' own accountant booked (a cross-check of ``steps_taken``)."""
        if self.privacy_engine is None:
            return 0
        return sum(count for _, _, count in self.privacy_engine.accountant.history)


# ----------------------------------------------------------------------------- the methods


def sample_rate_and_steps(n: int, batch_size: int, epochs: int) -> tuple[float, int, int]:
    """``(q, steps per epoch, steps)``: Opacus' convention ``q = 1/ceil(n/B)``, ``1/q`` steps an epoch.

    ``batch_size`` is the *global* expected batch (all ranks together).
    """
    per_epoch = max(1, math.ceil(n / batch_size))
    return 1.0 / per_epoch, per_epoch, per_epoch * epochs


@dataclass
class DPSGDBase(AdaptationMethod):
    """What ``dpsgd_ti``, ``dpsgd_lora`` and ``lora`` share: settings, checks, calibration, training."""

    name: str = "dpsgd"
    epochs: int = 50
    batch_size: int = 8
    learning_rate: float = 1e-3
    optimizer: str = "adamw"
    max_grad_norm: float = 1.0
    grad_sample_mode: str = "hooks"
    max_noise_multiplier: float = 50.0
    epsilon_every_n_epochs: Optional[int] = None  # None: about 10 times a run, and after the last epoch
    mechanism_seed: Optional[int] = None
    templates: Optional[list[str]] = None
    private = True

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

    def prepare(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> None:
        """Make the parameters to train trainable (and nothing else); set what ``adapted`` needs."""
        raise NotImplementedError

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
        denoiser = Denoiser(backbone.text_encoder, backbone.unet)
        if ctx.privacy.is_private:
            check_opacus_compatible(denoiser, self.grad_sample_mode)
        templates = resolve_templates(self.templates, data)
        dataset = LatentPromptDataset(TemplatePromptDataset(backbone, data, templates, [self.placeholder_token(data)],
                                                            [0] * n, ctx.seed))
        dp = None
        if ctx.privacy.is_private:
            dp = DPSettings(noise_multiplier=report.noise_multiplier, max_grad_norm=float(self.max_grad_norm),
                            sample_rate=report.sample_rate, grad_sample_mode=self.grad_sample_mode,
                            accountant=ctx.privacy.accountant, delta=float(ctx.privacy.delta),
                            mechanism_seed=self.mechanism_seed)
        module = DPSGDModule(denoiser, backbone.scheduler, dataset, batch_size=self.batch_size,
                             learning_rate=float(self.learning_rate), optimizer=self.optimizer, dp=dp, seed=ctx.seed,
                             log_loss=dp is None)
        overrides = dict(max_epochs=int(self.epochs), stage="adapt")
        if dp is not None:
            overrides["use_distributed_sampler"] = False  # the Poisson loader shards itself
        module.epsilon_every = int(self.epsilon_every_n_epochs or max(1, math.ceil(self.epochs / 10)))
        trainer = ctx.make_trainer(max_steps=report.steps, **overrides)
        trainer.fit(module)
        return module, report

    def placeholder_token(self, data: BenchmarkDataset) -> str:
        return data.config.concept.placeholder

    def privacy_of(self, module: DPSGDModule, report: PrivacyReport) -> dict:
        """The ``privacy/*`` entries: epsilon for the steps actually taken (<= the target)."""
        if module.dp is None:
            return {"epsilon": math.inf, "delta": 0.0, "private": False, "steps": module.steps_taken}
        spent = module.epsilon_so_far()
        if not spent <= report.target_epsilon * (1 + 1e-9):
            raise RuntimeError(f"DP-SGD spent epsilon {spent} above the target {report.target_epsilon}")
        randomness = "secret" if self.mechanism_seed is None else "seeded"  # warned about in _make_private
        return {**report.as_dict(), "epsilon": spent, "steps": module.steps_taken, "private": True,
                "max_grad_norm": float(self.max_grad_norm), "grad_sample_mode": self.grad_sample_mode,
                "mechanism_randomness": randomness, "opacus_steps": module.opacus_steps()}


@dataclass
class DPSGDTextualInversion(DPSGDBase):
    """``method=dpsgd_ti``: one placeholder row trained on the whole adaptation split with DP-SGD."""

    name: str = "dpsgd_ti"
    learning_rate: float = 0.02

    def prepare(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> None:
        concept = data.config.concept
        ids, init = backbone.add_placeholder_tokens([concept.placeholder], concept.initializer_token)
        self.embedding = PlaceholderEmbedding(backbone.text_encoder.get_input_embeddings(), ids, init.unsqueeze(0))
        backbone.text_encoder.set_input_embeddings(self.embedding)

    def adapt(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Adaptation:
        module, report = self.train(backbone, data, ctx)
        concept = data.config.concept
        learned = self.embedding.learned.rows.detach()[0].cpu().clone()
        backbone.text_encoder.set_input_embeddings(self.embedding.base)  # a plain table; run.py binds the row
        privacy = self.privacy_of(module, report)
        path = ctx.output_dir / "learned_embeds.safetensors"
        save_file({concept.placeholder: learned.contiguous()}, path)  # DP release (or non-private like ti)
        return Adaptation(
            placeholder=concept.placeholder, embeddings={concept.placeholder: learned}, privacy=privacy,
            metrics={"adapt/steps": module.steps_taken, "adapt/epochs": int(self.epochs),
                     "adapt/embedding_norm": float(learned.norm()),
                     "adapt/epsilon_by_epoch": json.dumps(module.epsilon_history)},
        )


@dataclass
class DPSGDLoRA(DPSGDBase):
    """``method=dpsgd_lora``: peft LoRA adapters on the UNet's attention projections, DP-SGD."""

    name: str = "dpsgd_lora"
    rank: int = 4
    alpha: Optional[float] = None  # None: alpha = rank (scaling 1)
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))

    def check(self, privacy: PrivacyConfig) -> None:
        super().check(privacy)
        check_positive(self.rank, "method.rank", integer=True)
        if self.alpha is not None:
            check_positive(self.alpha, "method.alpha")
        if not self.lora_targets:
            raise ConfigError("method.lora_targets must name at least one module (e.g. to_q, to_k, to_v, to_out.0)")

    def placeholder_token(self, data: BenchmarkDataset) -> str:
        # LoRA learns no token: training prompts are the templates with "{}" filled by the
        # concept's initializer word, so the prompt still names the concept.
        return data.config.concept.initializer_token

    def placeholder_for(self, data: BenchmarkDataset, adaptation: Optional[Adaptation]) -> str:
        return data.config.concept.initializer_token

    def prepare(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> None:
        from peft import LoraConfig

        names = {name.rsplit(".", 1)[-1] for name, _ in backbone.unet.named_modules()}
        full = {name for name, _ in backbone.unet.named_modules()}
        missing = [t for t in self.lora_targets if t not in names and not any(n.endswith("." + t) for n in full)]
        if missing:
            raise ConfigError(f"method.lora_targets {missing} match no module of the UNet; attention projections "
                              f"are named {list(LORA_TARGETS)}")
        config = LoraConfig(r=int(self.rank), lora_alpha=float(self.alpha if self.alpha is not None else self.rank),
                            target_modules=list(self.lora_targets), lora_dropout=0.0, init_lora_weights="gaussian")
        backbone.unet.add_adapter(config)  # diffusers' PEFT integration: adapters trainable, base frozen
        for name, p in backbone.unet.named_parameters():
            p.requires_grad_("lora_" in name)

    def lora_state(self, backbone: Backbone) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in backbone.unet.state_dict().items() if "lora_" in k}

    def adapt(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Adaptation:
        module, report = self.train(backbone, data, ctx)
        for p in backbone.unet.parameters():
            p.requires_grad_(False)
        privacy = self.privacy_of(module, report)
        state = self.lora_state(backbone)
        if privacy["private"]:
            # Only a DP-trained adapter is released; a non-private one stays in memory (DESIGN.md).
            path = ctx.output_dir / "lora_weights.safetensors"
            save_file(state, path)
        lora_norm = math.sqrt(sum(float(v.float().pow(2).sum()) for v in state.values()))
        # The adapted UNet stays in the backbone: sampling uses it.
        return Adaptation(
            placeholder="", privacy=privacy,
            metrics={"adapt/steps": module.steps_taken, "adapt/epochs": int(self.epochs),
                     "adapt/lora_parameters": sum(v.numel() for v in state.values()), "adapt/lora_norm": lora_norm,
                     "adapt/epsilon_by_epoch": json.dumps(module.epsilon_history)},
        )


@dataclass
class LoRA(DPSGDLoRA):
    """``method=lora``: the non-private twin of ``dpsgd_lora`` (same module, no clipping, no noise)."""

    name: str = "lora"
    private = False
