"""DPSGDBase: noise calibration, bad input refused before training, and the dataset / loss hooks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import torch
from torch.utils.data import Subset

from benchmark.adapt.dpsgd.base import sample_rate_and_steps
from benchmark.adapt.dpsgd.module import PerExampleMSE
from benchmark.adapt.dpsgd.ti import DPSGDTextualInversion
from benchmark.config import ConfigError
from benchmark.datasets import load_dataset
from benchmark.models.backbone import load_backbone
from benchmark.privacy import epsilon_spent
from tests.adapt._helpers import context, method_from_yaml, run_config


def _privacy(epsilon, delta, accountant):
    return dataclasses.replace(run_config("privacy=dp").privacy, epsilon=epsilon, delta=delta, accountant=accountant)


@pytest.mark.parametrize("accountant", [pytest.param("prv", marks=pytest.mark.slow), "rdp"])
def test_noise_multiplier_reproduces_target_epsilon(accountant):
    from opacus.accountants.utils import get_noise_multiplier

    eps, delta = 2.0, 1e-5
    q, per_epoch, steps = sample_rate_and_steps(n=32, batch_size=8, epochs=50)
    assert (q, per_epoch, steps) == (0.25, 4, 200)
    z_opacus = get_noise_multiplier(target_epsilon=eps, target_delta=delta, sample_rate=q, steps=steps,
                                    accountant=accountant, epsilon_tolerance=0.005)
    # Opacus' noise multiplier, fed to the privacy module's accountant: the target within 1%.
    assert abs(epsilon_spent(z_opacus, q, steps, delta, accountant) - eps) <= 0.01 * eps
    method = method_from_yaml("dpsgd_ti", epochs=50, batch_size=8)
    report = method.calibrate(32, _privacy(eps, delta, accountant))
    assert (report.sample_rate, report.steps) == (q, steps)
    assert report.epsilon <= eps and report.epsilon >= 0.99 * eps
    assert abs(report.noise_multiplier - z_opacus) <= 0.01 * z_opacus


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
        method_from_yaml("dpsgd_ti", epochs=400, batch_size=4).calibrate(8, _privacy(0.01, 1e-5, "rdp"))




class ZeroLoss(PerExampleMSE):
    def forward(self, pred, target):
        return super().forward(pred, target) * 0.0


@dataclass(kw_only=True)
class ZeroLossTI(DPSGDTextualInversion):
    """A new DP-SGD method through the loss hook alone: the base must train with its criterion."""

    def per_example_loss(self):
        return ZeroLoss()


@dataclass(kw_only=True)
class HalfDatasetTI(DPSGDTextualInversion):
    """A dataset hook that drops records: the accounting's n would be wrong, so it must be refused."""

    def training_dataset(self, backbone, data, ctx):
        full = super().training_dataset(backbone, data, ctx)
        return Subset(full, range(len(full) // 2))


def _fields(**changes):
    return dataclasses.asdict(method_from_yaml("dpsgd_ti", epochs=1, batch_size=4, **changes))


def test_the_loss_hook_is_what_training_minimises(tmp_path, micro_world):
    run = run_config()
    backbone = load_backbone(run.model)
    data = load_dataset(run.dataset, run.model.resolution)
    (init_id,) = backbone.tokenizer.encode(data.config.concept.initializer_token, add_special_tokens=False)
    init = backbone.text_encoder.get_input_embeddings().weight[init_id].detach().clone()
    adaptation = ZeroLossTI(**_fields()).adapt(backbone, data, context(run, tmp_path))
    # A zero loss has zero gradients, and AdamW without decay then leaves the row where it started.
    assert adaptation.metrics["adapt/steps"] == 2
    torch.testing.assert_close(adaptation.embeddings[data.config.concept.placeholder], init, atol=0, rtol=0)
    # The default loss does move it (so the check above is not vacuous).
    backbone = load_backbone(run.model)
    trained = method_from_yaml("dpsgd_ti", epochs=1, batch_size=4).adapt(backbone, data, context(run, tmp_path / "d"))
    assert (trained.embeddings[data.config.concept.placeholder] - init).abs().max() > 0


def test_a_dataset_hook_must_keep_one_example_per_private_record(tmp_path, micro_world):
    run = run_config()
    backbone = load_backbone(run.model)
    data = load_dataset(run.dataset, run.model.resolution)
    with pytest.raises(RuntimeError, match="one example per private record"):
        HalfDatasetTI(**_fields()).adapt(backbone, data, context(run, tmp_path))
