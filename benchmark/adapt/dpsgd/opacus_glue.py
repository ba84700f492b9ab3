"""Opacus glue any DP-SGD method can reuse: samplers, checks, the Poisson loader, ``make_private``.

Guarantees, in Opacus' terms:

* :func:`make_private` turns a model and optimiser into a DP-SGD pair: every step clips
  each example's gradient to ``max_grad_norm``, adds Gaussian noise
  ``noise_multiplier * max_grad_norm`` to the sum once (on rank 0 under data parallel),
  and divides by the *expected* global batch; batches are Poisson samples of rate
  ``sample_rate``, which it checks is the rate Opacus books.
* :func:`check_trainer_compatible` and :func:`check_opacus_compatible` refuse, with a
  :class:`~benchmark.config.ConfigError` naming the key and the fix, every setting under
  which that guarantee would not hold (gradient accumulation, trainer clipping,
  unsupported strategies, layers without per-example gradients).
* Batches come from :mod:`benchmark.adapt.dpsgd.poisson`: exactly ``1/q`` Poisson batches
  an epoch, in lockstep across ranks.
* Importing this module registers per-example gradient and norm samplers for
  :class:`~benchmark.adapt.textual_inversion.PlaceholderRows`, so a trainable embedding
  row costs ``B x k x D`` per step instead of Opacus' dense ``B x V x D``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from benchmark.adapt.textual_inversion import PlaceholderRows
from benchmark.config import ConfigError, StrategyConfig
from benchmark.lightning import distributed
from benchmark.adapt.dpsgd.poisson import lockstep_poisson_loader, steps_per_epoch
from benchmark.privacy.randomness import mechanism_seed, stream_seed

GRAD_SAMPLE_MODES = ("hooks", "ghost", "functorch")
DP_STRATEGIES = ("auto", "ddp", "single_device")  # Lightning strategies DP-SGD is verified under


# ----------------------------------------------------------------------------- samplers


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


# Lightning's names for full float32 training: the only precision DP-SGD's clipping and noise accept.
FULL_PRECISION = ("32-true", "32", "64-true", "64")


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
    if str(strategy.precision) not in FULL_PRECISION:
        raise ConfigError(
            f"strategy.precision={strategy.precision!r} is refused with DP-SGD: under mixed precision Lightning's "
            "gradient scaler skips steps and rescales from the raw, un-noised gradients, and Opacus would clip "
            "scaled per-example gradients. Use strategy.precision=32-true (model.dtype=float16 still keeps the "
            "frozen backbone in half precision; the trained parameters, clipping and noise stay in float32)")
    if grad_sample_mode == "ghost" and distributed.process_count(strategy) > 1:
        raise ConfigError(
            "method.grad_sample_mode=ghost with several processes is refused: ghost clipping runs two backward "
            "passes per step, which Lightning's DDP reducer does not allow; use method.grad_sample_mode=hooks")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the process group, ``(0, 1)`` outside data parallel."""
    return distributed.rank(), distributed.world_size()


# ----------------------------------------------------------------------------- make_private


@dataclass
class DPSettings:
    """What ``make_private`` needs; ``None`` in place of it means non-private training."""

    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    grad_sample_mode: str = "hooks"
    accountant: str = "prv"
    delta: float = 1e-5
    mechanism_seed: Optional[int] = None  # None: secret randomness for sampling and noise


@dataclass
class PrivateTraining:
    """What :func:`make_private` returns: Opacus' wrapped model, DP optimiser, loader and engine.

    ``criterion`` is Opacus' two-pass loss for ghost clipping (call ``.backward()`` on
    its output), else ``None`` (backpropagate the plain criterion's loss).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loader: DataLoader
    engine: object
    criterion: Optional[nn.Module]


def make_private(model: nn.Module, optimizer: torch.optim.Optimizer, dataset: Dataset, dp: DPSettings,
                 criterion: nn.Module) -> PrivateTraining:
    """Opacus' ``PrivacyEngine.make_private`` on ``model``, with secret (or seeded) Poisson sampling and noise.

    Call once the process group exists: with several ranks the model is wrapped in
    Opacus' ``DPDDP`` (per-rank clipping, one noise draw on rank 0, all-reduce) and the
    loader is the lockstep Poisson loader. Examples of ``dataset`` must be tuples
    (Opacus' empty-batch collate needs them). Raises if Opacus would book another
    sample rate than the one the noise was solved for.
    """
    from opacus import PrivacyEngine
    from opacus.data_loader import DPDataLoader
    from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP

    rank, world = rank_and_world()
    base, _ = mechanism_seed(dp.mechanism_seed, private=True, what="the Poisson samples and the noise")
    # Each rank samples its shard with its own stream: shared streams would correlate inclusions.
    sampler_gen = torch.Generator().manual_seed(stream_seed("dpsgd-poisson", base, rank))  # the sampler draws on CPU
    # Opacus draws the noise on the parameters' device with this generator: it must live there.
    device = next(p.device for p in model.parameters() if p.requires_grad)
    noise_gen = torch.Generator(device=device).manual_seed(stream_seed("dpsgd-noise", base))  # rank 0 adds noise
    module = DPDDP(model) if world > 1 else model
    if world > 1:
        loader = lockstep_poisson_loader(dataset, dp.sample_rate, sampler_gen)
    else:
        loader = DPDataLoader(dataset, sample_rate=dp.sample_rate, collate_fn=None, generator=sampler_gen)
        loader.batch_sampler.steps = steps_per_epoch(dp.sample_rate)  # not Opacus' int(1/q)
    with warnings.catch_warnings():
        # Opacus' secure_mode needs torchcsprng; the generators above are seeded from secrets instead.
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        engine = PrivacyEngine(accountant=dp.accountant if dp.accountant in ("prv", "rdp") else "prv")
        out = engine.make_private(
            module=module, optimizer=optimizer, data_loader=loader, noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm, poisson_sampling=False,  # the loader above already is Poisson
            loss_reduction="mean", grad_sample_mode=dp.grad_sample_mode, noise_generator=noise_gen,
            criterion=criterion,
        )
    if dp.grad_sample_mode == "ghost":
        wrapped, dp_optimizer, dp_criterion, dp_loader = out
    else:
        (wrapped, dp_optimizer, dp_loader), dp_criterion = out, None
    wrapped.forbid_grad_accumulation()  # make_private skips this when it does not build the loader
    # make_private infers q = 1/len(loader); it must be the q the noise was solved for.
    if not math.isclose(1.0 / len(dp_loader), dp.sample_rate, rel_tol=1e-9):
        raise RuntimeError(f"Opacus books sample rate {1 / len(dp_loader)}, the noise was solved for "
                           f"{dp.sample_rate}: 1/q must be an integer")
    return PrivateTraining(wrapped, dp_optimizer, dp_loader, engine, dp_criterion)


def zero_non_finite_examples(params) -> None:
    """Per-example gradients (``p.grad_sample``, ``B x ...``) of an example with any non-finite
    entry, in any parameter, become zero in every parameter, before Opacus clips them.

    One overflowing example would otherwise turn the clipped sum, and every weight, NaN: an
    event that depends on one record and is outside the sensitivity bound. Zero is
    data-independent and within the clipping norm; nothing reports how many were replaced.
    """
    samples = [p.grad_sample for p in params if getattr(p, "grad_sample", None) is not None]
    if not samples or samples[0].shape[0] == 0:
        return
    bad = torch.zeros(samples[0].shape[0], dtype=torch.bool, device=samples[0].device)
    for g in samples:
        bad |= ~torch.isfinite(g.flatten(1)).all(dim=1)
    if bool(bad.any()):
        for g in samples:
            g[bad] = 0


def release_private(wrapped: nn.Module, model: nn.Module) -> None:
    """Remove Opacus' hooks and the activations it leaves on ``model``'s layers after training."""
    if hasattr(wrapped, "_close"):
        wrapped._close()
    for m in model.modules():  # Opacus' cleanup leaves the last captured activations behind
        for attr in ("activations", "max_batch_len"):
            if hasattr(m, attr):
                delattr(m, attr)


def booked_steps(engine) -> int:
    """Optimizer steps Opacus' own accountant booked (a cross-check of the steps taken)."""
    return sum(count for _, _, count in engine.accountant.history)
