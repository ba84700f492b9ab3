"""DP-SGD baselines: clipping against a hand-written loop, accounting, end-to-end runs, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import default_collate

from benchmark.config import ConfigError, ModelConfig, PrivacyConfig, StrategyConfig, validate_config, default_config
from benchmark.data.datasets import load_dataset
from benchmark.lightning.factories import make_trainer_factory
from benchmark.adapt.base import RunContext
from benchmark.adapt.dpsgd import (
    Denoiser, DPSettings, DPSGDLoRA, DPSGDModule, DPSGDTextualInversion,
    LatentPromptDataset, check_opacus_compatible, check_trainer_compatible, sample_rate_and_steps)
from benchmark.adapt.textual_inversion import PlaceholderEmbedding, TemplatePromptDataset
from benchmark.models.backbone import load_backbone
from benchmark.privacy import epsilon_spent
from tests.conftest import SMOKE, compose

MICRO = default_config(ModelConfig, "model=micro")


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


def _setup(tmp_path, method, overrides=()):
    """Micro backbone with ``method``'s trainable parameters in place; a batch of 4 and its draws."""
    run = validate_config(compose(SMOKE + list(overrides)))
    backbone = load_backbone(MICRO)
    data = load_dataset(run.dataset, 32)
    for p in list(backbone.text_encoder.parameters()) + list(backbone.unet.parameters()):
        p.requires_grad_(False)
    ctx = RunContext(tmp_path, 0, run.privacy, run.strategy, make_trainer_factory(run.strategy, None, tmp_path))
    method.prepare(backbone, data, ctx)
    dataset = LatentPromptDataset(TemplatePromptDataset(backbone, data, ["a painting in the style of {}"],
                                                        [method.placeholder_token(data)], [0] * len(data.adapt), 0))
    assert len(dataset) == 8
    denoiser = Denoiser(backbone.text_encoder, backbone.unet)
    mu, sd, ids = default_collate([dataset[i] for i in range(4)])
    g = torch.Generator().manual_seed(5)
    t = torch.tensor([100, 400, 700, 950])  # spread: very different per-example gradient norms
    helper = DPSGDModule(denoiser, backbone.scheduler, dataset, batch_size=4, learning_rate=1.0)
    noisy, t, target = helper.noise_targets(mu, sd, torch.randn(mu.shape, generator=g),
                                            torch.randn(mu.shape, generator=g), t)
    return backbone, denoiser, dataset, (noisy, t, ids, target)


def _per_example_grads(denoiser, batch):
    """Hand-written: each example's own gradient, one backward pass per example."""
    noisy, t, ids, target = batch
    params = [p for p in denoiser.parameters() if p.requires_grad]
    grads = []
    for i in range(len(noisy)):
        for p in params:
            p.grad = None
        pred = denoiser(noisy[i:i + 1], t[i:i + 1], ids[i:i + 1])
        nn.functional.mse_loss(pred, target[i:i + 1]).backward()
        grads.append(torch.cat([p.grad.flatten() for p in params]))
        for p in params:
            p.grad = None
    return params, torch.stack(grads)


def _update(module, params, batch):
    """One step with SGD(lr=1): returns the gradient the optimiser applied."""
    before = torch.cat([p.detach().flatten().clone() for p in params])
    module.step_on(*batch, module.dp_optimizer)
    return before - torch.cat([p.detach().flatten() for p in params])


@pytest.mark.parametrize("kind,mode", [("ti", "hooks"), ("ti", "ghost"), ("ti", "functorch"), ("lora", "hooks"),
                                       ("lora", "ghost")])
def test_zero_noise_dp_step_equals_hand_written_clip_and_average(tmp_path, micro_world, kind, mode):
    method = DPSGDTextualInversion() if kind == "ti" else DPSGDLoRA(rank=2)
    backbone, denoiser, dataset, batch = _setup(tmp_path, method)
    params, grads = _per_example_grads(denoiser, batch)
    norms = grads.norm(dim=1)
    clip = float(norms.median())  # half the examples are clipped, half are not
    assert (norms > clip * 1.01).any() and (norms < clip * 0.99).any()
    # Opacus' clip factor min(1, C / (|g| + 1e-6)); the sum divided by the expected batch q*n = 4.
    factors = (clip / (norms + 1e-6)).clamp(max=1.0)
    reference = (grads * factors[:, None]).sum(0) / 4
    dp = DPSettings(noise_multiplier=0.0, max_grad_norm=clip, sample_rate=0.5, grad_sample_mode=mode,
                    mechanism_seed=0)
    module = DPSGDModule(denoiser, backbone.scheduler, dataset, batch_size=4, learning_rate=1.0, optimizer="sgd", dp=dp)
    module.setup("fit")
    applied = _update(module, params, batch)
    torch.testing.assert_close(applied, reference, atol=1e-6 * float(reference.abs().max()) + 1e-9, rtol=1e-4)
    # An empty Poisson batch is a step too (no examples, zero noise here: no change).
    empty = tuple(x[:0] for x in batch)
    assert float(_update(module, params, empty).abs().max()) == 0.0
    assert module.steps_taken == 2 and module.opacus_steps() == 2  # the empty step is booked too
    module.teardown("fit")
    assert module.model is denoiser


def test_non_private_step_is_the_plain_mean_gradient(tmp_path, micro_world):
    backbone, denoiser, dataset, batch = _setup(tmp_path, DPSGDTextualInversion())
    params, grads = _per_example_grads(denoiser, batch)
    module = DPSGDModule(denoiser, backbone.scheduler, dataset, batch_size=4, learning_rate=1.0, optimizer="sgd",
                         dp=None)
    module.setup("fit")
    # privacy.epsilon=inf: the same module, no clipping, no noise.
    torch.testing.assert_close(_update(module, params, batch), grads.mean(0), atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_noise_multiplier_reproduces_target_epsilon(accountant):
    from opacus.accountants.utils import get_noise_multiplier

    eps, delta = 2.0, 1e-5
    q, per_epoch, steps = sample_rate_and_steps(n=32, batch_size=8, epochs=50)
    assert (q, per_epoch, steps) == (0.25, 4, 200)
    z_opacus = get_noise_multiplier(target_epsilon=eps, target_delta=delta, sample_rate=q, steps=steps,
                                    accountant=accountant, epsilon_tolerance=0.005)
    # Opacus' noise multiplier, fed to the privacy module's accountant: the target within 1%.
    assert abs(epsilon_spent(z_opacus, q, steps, delta, accountant) - eps) <= 0.01 * eps
    report = DPSGDTextualInversion(epochs=50, batch_size=8).calibrate(32, PrivacyConfig(eps, delta, accountant))
    assert (report.sample_rate, report.steps) == (q, steps)
    assert report.epsilon <= eps and report.epsilon >= 0.99 * eps
    assert abs(report.noise_multiplier - z_opacus) <= 0.01 * z_opacus


def _metrics(out):
    assert (out / "metrics.json").exists()
    return json.loads((out / "metrics.json").read_text())


def test_dpsgd_ti_end_to_end(run_job):
    metrics, out = run_job(["method=dpsgd_ti", "privacy=dp", "privacy.epsilon=4", "method.epochs=3",
                            "method.batch_size=4"])
    on_disk = _metrics(out)
    assert on_disk["privacy/epsilon"] <= 4 and on_disk["privacy/epsilon"] > 3.9  # the budget is spent, not exceeded
    assert on_disk["privacy/sample_rate"] == 0.5 and on_disk["privacy/steps"] == 6 == on_disk["privacy/opacus_steps"]
    by_epoch = json.loads(on_disk["adapt/epsilon_by_epoch"])
    assert [e for e, _ in by_epoch] == [1, 2, 3]
    spent = [eps for _, eps in by_epoch]
    assert spent == sorted(spent) and spent[-1] == on_disk["privacy/epsilon"]
    assert on_disk["privacy/noise_multiplier"] > 0 and on_disk["privacy/private"] is True
    assert (out / "learned_embeds.safetensors").exists()


@pytest.mark.parametrize("accountant", ["rdp"])
def test_dpsgd_lora_end_to_end_releases_only_the_dp_adapter(run_job, tmp_path, accountant):
    metrics, out = run_job(["method=dpsgd_lora", "privacy=dp", "privacy.epsilon=2", f"privacy.accountant={accountant}",
                            "method.epochs=2", "method.batch_size=4"], tmp_path / "dp")
    on_disk = _metrics(out)
    assert on_disk["privacy/epsilon"] <= 2 and on_disk["privacy/accountant"] == accountant
    assert on_disk["privacy/steps"] == 4 and (out / "lora_weights.safetensors").exists()
    metrics, out = run_job(["method=lora", "method.epochs=2", "method.batch_size=4"], tmp_path / "nonprivate")
    on_disk = _metrics(out)
    assert math.isinf(float(on_disk["privacy/epsilon"])) and on_disk["adapt/steps"] == 4
    assert not list(out.glob("*.safetensors")), "a non-private adapter must not be written out"


def test_lora_leaves_the_adapted_unet_for_sampling(tmp_path, micro_world):
    run = validate_config(compose(SMOKE + ["method=dpsgd_lora", "privacy=dp", "privacy.accountant=rdp"]))
    backbone = load_backbone(MICRO)
    data = load_dataset(run.dataset, 32)
    text_before = {k: v.clone() for k, v in backbone.text_encoder.state_dict().items()}
    base_before = {k: v.clone() for k, v in backbone.unet.state_dict().items()}
    tmp_path.mkdir(exist_ok=True)
    ctx = RunContext(tmp_path, 0, run.privacy, run.strategy, make_trainer_factory(run.strategy, None, tmp_path))
    adaptation = DPSGDLoRA(epochs=2, batch_size=4, learning_rate=0.01, mechanism_seed=1).adapt(backbone, data, ctx)
    state = backbone.unet.state_dict()
    lora = {k: v for k, v in state.items() if "lora_B" in k}
    assert lora and any(v.abs().max() > 0 for v in lora.values()), "LoRA B starts at 0 and must have trained"
    for k, v in base_before.items():  # every base weight of the UNet untouched (peft renames them base_layer)
        key = k if k in state else k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(state[key], v), k
    for k, v in backbone.text_encoder.state_dict().items():
        assert torch.equal(v, text_before[k]), k
    assert not any(hasattr(m, "activations") or m._forward_hooks for m in backbone.unet.modules()), "Opacus hooks left"
    assert adaptation.privacy["mechanism_randomness"] == "seeded"
    with torch.no_grad():
        out = backbone.unet(torch.zeros(1, *backbone.latent_shape), torch.tensor([10]),
                            encoder_hidden_states=backbone.encode_prompts(["a red circle"])).sample
    assert torch.isfinite(out).all()


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("overrides,match", [
    (["method=dpsgd_ti", "method.max_grad_norm=0"], "method.max_grad_norm"),
    (["method=dpsgd_lora", "method.max_grad_norm=-1"], "method.max_grad_norm"),
    (["method=dpsgd_ti", "method.epochs=400", "privacy.epsilon=0.01"], "method.epochs"),
    (["method=dpsgd_ti", "strategy.accumulate_grad_batches=2"], "accumulate_grad_batches"),
    (["method=dpsgd_lora", "strategy.gradient_clip_val=1.0"], "gradient_clip_val"),
    (["method=dpsgd_ti", "method.grad_sample_mode=ew"], "method.grad_sample_mode"),
    (["method=lora"], "not differentially private"),
])
def test_bad_dpsgd_input_is_refused_before_training(run_job, tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        run_job(["privacy=dp", *overrides])
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_unreachable_epsilon_names_epochs_and_batch_size():
    with pytest.raises(ConfigError, match=r"method\.epochs=400.*method\.batch_size=4"):
        DPSGDTextualInversion(epochs=400, batch_size=4).calibrate(8, PrivacyConfig(0.01, 1e-5, "rdp"))


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
    with pytest.raises(ConfigError, match="grad_sample_mode=ghost"):
        check_trainer_compatible(default_config(StrategyConfig, devices=2, strategy="ddp"), "ghost")
    with pytest.raises(ConfigError, match="strategy.strategy='ddp_spawn'"):
        check_trainer_compatible(default_config(StrategyConfig, devices=2, strategy="ddp_spawn"), "hooks")
    check_trainer_compatible(default_config(StrategyConfig, devices=2, strategy="ddp"), "hooks")
