"""Opacus glue: the placeholder-row grad sampler, layer compatibility, trainer settings."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from benchmark.adapt.dpsgd.opacus_glue import check_opacus_compatible, check_trainer_compatible
from benchmark.adapt.textual_inversion import PlaceholderEmbedding
from benchmark.config import ConfigError
from tests.adapt._helpers import run_config


def test_placeholder_rows_have_no_buffers_and_opacus_takes_their_per_example_gradient():
    from opacus.grad_sample import GradSampleModule

    base = nn.Embedding(10, 4).requires_grad_(False)
    emb = PlaceholderEmbedding(base, [8, 9], torch.randn(2, 4))
    assert not list(emb.learned.buffers())  # Opacus refuses trainable modules with buffers
    ids = torch.tensor([[1, 8, 2, 9], [9, 9, 0, 3]])
    weights = torch.randn(2, 4, 4)
    wrapped = GradSampleModule(emb, loss_reduction="sum")
    (wrapped(ids) * weights).sum().backward()
    per_example = emb.rows.grad_sample  # 2 examples x 2 rows x D
    for b in range(2):  # example b's gradient of row k: the sum of its weights where row k sits
        for k, token in enumerate((8, 9)):
            torch.testing.assert_close(per_example[b, k], weights[b][ids[b] == token].sum(0))


def test_layers_opacus_cannot_handle_are_named_with_a_fix():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    with pytest.raises(ConfigError, match=r"BatchNorm.*ModuleValidator\.fix"):
        check_opacus_compatible(model, "hooks")
    frozen_bn = nn.Sequential(nn.Linear(3, 4), nn.GroupNorm(2, 4))
    check_opacus_compatible(frozen_bn, "hooks")  # supported layers pass

    class Custom(nn.Module):  # a trainable layer with a buffer, for which ghost has no norm sampler
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))
            self.register_buffer("stat", torch.zeros(3))

    with pytest.raises(ConfigError, match=r"custom \(Custom\): a trainable layer with buffers"):
        check_opacus_compatible(nn.ModuleDict({"custom": Custom()}), "hooks")


def test_ghost_clipping_and_other_strategies_are_refused_with_several_processes():
    strategy = run_config().strategy

    def on(**changes):
        return dataclasses.replace(strategy, **changes)

    with pytest.raises(ConfigError, match="grad_sample_mode=ghost"):
        check_trainer_compatible(on(devices=2, strategy="ddp"), "ghost")
    with pytest.raises(ConfigError, match="strategy.strategy='ddp_spawn'"):
        check_trainer_compatible(on(devices=2, strategy="ddp_spawn"), "hooks")
    check_trainer_compatible(on(devices=2, strategy="ddp"), "hooks")
    check_trainer_compatible(on(devices=1, strategy="auto"), "ghost")  # one process: ghost is fine


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed", "16-true"])
def test_mixed_and_half_precision_are_refused_naming_the_key(precision):
    strategy = dataclasses.replace(run_config().strategy, precision=precision)
    with pytest.raises(ConfigError, match=f"strategy.precision='{precision}' is refused with DP-SGD"):
        check_trainer_compatible(strategy, "hooks")


def test_the_noise_generator_lives_on_the_parameters_device(monkeypatch):
    """Opacus draws the noise with ``torch.normal(..., device=p.device, generator=g)``: g must be there."""
    from opacus import PrivacyEngine

    from benchmark.adapt.dpsgd import opacus_glue
    from benchmark.adapt.dpsgd.opacus_glue import DPSettings, make_private

    built, given = [], {}
    real_generator = torch.Generator

    def recording_generator(*args, **kwargs):  # every generator make_private builds, with its device
        built.append(kwargs.get("device"))  # None: built without a device (the CPU by default)
        return real_generator(*args, **kwargs)

    def capture(self, **kwargs):
        given.update(kwargs)
        raise RuntimeError("captured")

    monkeypatch.setattr(opacus_glue.torch, "Generator", recording_generator)
    monkeypatch.setattr(PrivacyEngine, "make_private", capture)
    model = nn.Linear(3, 1)
    data = [(torch.zeros(3), torch.zeros(1)) for _ in range(4)]
    dp = DPSettings(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.5, mechanism_seed=0)
    with pytest.raises(RuntimeError, match="captured"):
        make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), data, dp, None)
    device = next(model.parameters()).device
    assert given["noise_generator"].device == device
    # Built for the parameters' device explicitly, not left to the CPU default.
    assert device in [torch.device(d) for d in built if d is not None]


def test_an_example_with_a_non_finite_gradient_is_zeroed_in_every_parameter():
    from benchmark.adapt.dpsgd.opacus_glue import zero_non_finite_examples

    w, b = nn.Parameter(torch.zeros(2, 3)), nn.Parameter(torch.zeros(2))
    w.grad_sample = torch.arange(4 * 6, dtype=torch.float32).view(4, 2, 3)
    b.grad_sample = torch.ones(4, 2)
    b.grad_sample[1, 0] = float("inf")  # example 1 overflowed in one parameter only
    w.grad_sample[3, 1, 2] = float("nan")  # example 3 in the other
    expected_w = w.grad_sample.clone()
    zero_non_finite_examples([w, b])
    assert torch.isfinite(w.grad_sample).all() and torch.isfinite(b.grad_sample).all()
    for i in (1, 3):
        assert not w.grad_sample[i].any() and not b.grad_sample[i].any()
    for i in (0, 2):  # the others are untouched
        assert torch.equal(w.grad_sample[i], expected_w[i]) and torch.equal(b.grad_sample[i], torch.ones(2))


@pytest.mark.parametrize("n", [744, 792, 8, 9])
def test_an_epoch_has_exactly_one_over_q_poisson_batches(n):
    """q = 1/ceil(n/B): Opacus' int(1/q) is one short for n = 744 or 792 at B = 8."""
    import math

    from benchmark.adapt.dpsgd.base import sample_rate_and_steps
    from benchmark.adapt.dpsgd.opacus_glue import DPSettings, make_private
    from benchmark.adapt.dpsgd.poisson import steps_per_epoch

    q, per_epoch, _ = sample_rate_and_steps(n, 8, 1)
    assert steps_per_epoch(q) == per_epoch == math.ceil(n / 8)
    model = nn.Linear(3, 1)
    data = [(torch.zeros(3), torch.zeros(1)) for _ in range(n)]
    dp = DPSettings(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=q, mechanism_seed=0)
    private = make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), data, dp, None)
    assert len(private.loader) == per_epoch and sum(1 for _ in private.loader) == per_epoch
