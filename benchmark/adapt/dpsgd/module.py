"""The LightningModule of every DP-SGD method: one (Poisson) batch, one clipped and noised step.

Guarantees (with ``dp`` set): each optimiser step consumes exactly one Poisson batch of
rate ``dp.sample_rate`` (never accumulated; an empty batch is still a step, booked by
the accountant), clips every example's gradient to ``dp.max_grad_norm`` and adds the
noise once, through :func:`benchmark.adapt.dpsgd.opacus_glue.make_private`; the epsilon it
reports (:meth:`DPSGDModule.epsilon_so_far`) is the suite's accountant's for the steps
actually taken. No loss is logged in a DP run: a loss on private data is not DP.
``dp=None`` trains the same model on ordinary shuffled batches, without clipping or noise.
"""

from __future__ import annotations

import math
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from benchmark.adapt.dpsgd.opacus_glue import (DPSettings, booked_steps, make_private, rank_and_world,
                                               release_private, zero_non_finite_examples)
from benchmark.adapt.textual_inversion import noisy_latents_and_target
from benchmark.config import ConfigError
from benchmark.privacy import epsilon_spent
from benchmark.privacy.randomness import stream_seed


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


class DPSGDModule(L.LightningModule):
    """Trains the trainable parameters of ``denoiser`` with a per-example loss, DP-SGD or not.

    Manual optimisation: one optimiser step per (Poisson) batch, never accumulated. The
    batches come from :meth:`train_dataloader` (built in :meth:`setup`, once the process
    group exists); an example is a tuple ``(latent mean, latent std, prompt ids, ...)``.
    ``criterion`` maps ``(prediction, target)`` to the loss, with a ``reduction``
    attribute (``none``/``mean``/``sum``, Opacus' ghost-clipping API); default
    :class:`PerExampleMSE`. ``dp=None``: plain training, shuffled batches of ``batch_size``.
    """

    def __init__(self, denoiser: nn.Module, noise_scheduler, dataset: Dataset, *, batch_size: int,
                 learning_rate: float, optimizer: str = "adamw", dp: Optional[DPSettings] = None, seed: int = 0,
                 log_loss: bool = True, criterion: Optional[nn.Module] = None):
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
        self.criterion = criterion if criterion is not None else PerExampleMSE()
        self.model = denoiser  # replaced by Opacus' wrapper in setup()
        self.privacy_engine = None
        self.dp_optimizer = None
        self.dp_criterion = None
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
        rank, _ = rank_and_world()
        if self._trainer is not None and self.dp is not None:
            # Defence in depth: make_trainer overrides could still set these.
            if getattr(self.trainer, "accumulate_grad_batches", 1) != 1:
                raise ConfigError("gradient accumulation is incompatible with DP-SGD (one Poisson batch per step)")
            if getattr(self.trainer, "gradient_clip_val", None):
                raise ConfigError("trainer gradient clipping is incompatible with DP-SGD (use method.max_grad_norm)")
        optimizer = self._base_optimizer()
        self.noise_generator = torch.Generator().manual_seed(stream_seed("dpsgd-draws", self.seed, rank))
        if self.dp is None:
            generator = torch.Generator().manual_seed(stream_seed("dpsgd-shuffle", self.seed))
            self.loader = DataLoader(self.train_set, batch_size=min(self.batch_size, len(self.train_set)),
                                     shuffle=True, generator=generator)
            self.dp_optimizer = optimizer
            return
        private = make_private(self.denoiser, optimizer, self.train_set, self.dp, self.criterion)
        self.model, self.dp_optimizer, self.loader = private.model, private.optimizer, private.loader
        self.dp_criterion, self.privacy_engine = private.criterion, private.engine

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
        if self.dp_criterion is not None:
            loss = self._ghost_backward(pred, noisy, t, input_ids, target, optimizer)
            if loss is None:
                return self._empty_step(optimizer)
        else:
            loss = self.criterion(pred, target)
            if self._trainer is not None:
                self.manual_backward(loss)
            else:
                loss.backward()
            if self.dp is not None:
                zero_non_finite_examples(self.trainable_parameters())  # before Opacus clips (in step)
        optimizer.step()
        optimizer.zero_grad()
        self.steps_taken += 1
        return loss.detach()

    def _ghost_backward(self, pred, noisy, t, input_ids, target, optimizer) -> torch.Tensor:
        """Opacus' two-pass ghost-clipping backward, redone without the examples whose loss or
        gradient norm is non-finite.

        Ghost clipping never materialises per-example gradients, so
        :func:`zero_non_finite_examples` cannot reach them: one overflowing example makes the
        summed gradient, and every weight, NaN. Dropping the example instead gives it a zero
        gradient (Opacus divides the clipped sum by the expected batch size, not the actual
        one), the data-independent value the hooks path uses. The redo costs one more
        forward and backward, only on a batch that has such an example.
        """
        loss = self.dp_criterion(pred, target)
        loss.backward()  # Opacus runs two backward passes here
        keep = torch.isfinite(loss.loss_per_sample.detach()).flatten()
        keep &= torch.isfinite(self.model.per_sample_gradient_norms).to(keep.device)
        if bool(keep.all()):
            return loss
        optimizer.zero_grad()
        keep = keep.to(noisy.device)
        if not bool(keep.any()):  # nothing left: an empty batch's step (zero gradient, noise, accounting)
            return None
        loss = self.dp_criterion(self.model(noisy[keep], t[keep], input_ids[keep]), target[keep])
        loss.backward()
        return loss

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

    # --- accounting

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
            release_private(self.model, self.denoiser)  # sampling runs on the plain modules
            self.model = self.denoiser

    def opacus_steps(self) -> int:
        """Optimizer steps Opacus' own accountant booked (a cross-check of ``steps_taken``)."""
        return 0 if self.privacy_engine is None else booked_steps(self.privacy_engine)
