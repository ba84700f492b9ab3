"""The DP-SGD LightningModule: a zero-noise DP step against a hand-written clip-and-average loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import default_collate

from benchmark.adapt.dpsgd.base import LatentPromptDataset
from benchmark.adapt.dpsgd.module import Denoiser, DPSGDModule
from benchmark.adapt.dpsgd.opacus_glue import DPSettings
from benchmark.adapt.textual_inversion import TemplatePromptDataset
from benchmark.datasets import load_dataset
from benchmark.models.backbone import load_backbone
from tests.adapt._helpers import context, method_from_yaml, run_config


def _setup(tmp_path, method, overrides=()):
    """Micro backbone with ``method``'s trainable parameters in place; a batch of 4 and its draws."""
    run = run_config(*overrides)
    backbone = load_backbone(run.model)
    data = load_dataset(run.dataset, 32)
    for p in list(backbone.text_encoder.parameters()) + list(backbone.unet.parameters()):
        p.requires_grad_(False)
    ctx = context(run, tmp_path, seed=0)
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
    method = method_from_yaml("dpsgd_ti") if kind == "ti" else method_from_yaml("dpsgd_lora", rank=2)
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
    # float32: Opacus and the hand-written sum accumulate in different orders (~1e-6 of the largest entry).
    torch.testing.assert_close(applied, reference, atol=1e-5 * float(reference.abs().max()) + 1e-9, rtol=1e-4)
    # An empty Poisson batch is a step too (no examples, zero noise here: no change).
    empty = tuple(x[:0] for x in batch)
    assert float(_update(module, params, empty).abs().max()) == 0.0
    assert module.steps_taken == 2 and module.opacus_steps() == 2  # the empty step is booked too
    module.teardown("fit")
    assert module.model is denoiser


def test_non_private_step_is_the_plain_mean_gradient(tmp_path, micro_world):
    backbone, denoiser, dataset, batch = _setup(tmp_path, method_from_yaml("dpsgd_ti"))
    params, grads = _per_example_grads(denoiser, batch)
    module = DPSGDModule(denoiser, backbone.scheduler, dataset, batch_size=4, learning_rate=1.0, optimizer="sgd",
                         dp=None)
    module.setup("fit")
    # privacy.epsilon=inf: the same module, no clipping, no noise.
    torch.testing.assert_close(_update(module, params, batch), grads.mean(0), atol=1e-7, rtol=1e-4)


@pytest.mark.slow  # ~3.5 s each
@pytest.mark.parametrize("mode", ["hooks", "ghost"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_example_contributes_a_zero_gradient_and_the_rest_step_as_without_it(
        tmp_path, micro_world, mode, bad):
    """One poisoned example must not turn the step NaN; it counts as a zero gradient (item 4)."""
    method = method_from_yaml("dpsgd_ti")
    backbone, denoiser, dataset, batch = _setup(tmp_path, method)
    noisy, t, ids, target = batch
    finite = (noisy[[0, 1, 3]], t[[0, 1, 3]], ids[[0, 1, 3]], target[[0, 1, 3]])
    params, grads = _per_example_grads(denoiser, finite)
    clip = float(grads.norm(dim=1).median())
    reference = (grads * (clip / (grads.norm(dim=1) + 1e-6)).clamp(max=1.0)[:, None]).sum(0) / 4
    poisoned = noisy.clone()
    poisoned[2] = bad  # its activations, loss and gradient are all non-finite
    dp = DPSettings(noise_multiplier=0.0, max_grad_norm=clip, sample_rate=0.5, grad_sample_mode=mode,
                    mechanism_seed=0)
    module = DPSGDModule(denoiser, backbone.scheduler, dataset, batch_size=4, learning_rate=1.0, optimizer="sgd", dp=dp)
    module.setup("fit")
    applied = _update(module, params, (poisoned, t, ids, target))
    assert torch.isfinite(applied).all()
    torch.testing.assert_close(applied, reference, atol=1e-5 * float(reference.abs().max()) + 1e-9, rtol=1e-4)
    all_bad = torch.full_like(noisy, bad)  # a batch of nothing but poisoned examples: a zero step
    assert float(_update(module, params, (all_bad, t, ids, target)).abs().max()) == 0.0
    assert module.steps_taken == 2
