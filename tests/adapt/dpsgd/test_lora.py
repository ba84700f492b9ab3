"""``method=dpsgd_lora`` / ``lora``: only a DP adapter is released; the adapted UNet samples."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmark.datasets import load_dataset
from benchmark.models.backbone import load_backbone
from tests.adapt._helpers import context, method_from_yaml, run_config


def _metrics(out):
    assert (out / "metrics.json").exists()
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
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


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_lora_leaves_the_adapted_unet_for_sampling(tmp_path, micro_world):
    run = run_config("method=dpsgd_lora", "privacy=dp", "privacy.accountant=rdp")
    backbone = load_backbone(run.model)
    data = load_dataset(run.dataset, 32)
    text_before = {k: v.clone() for k, v in backbone.text_encoder.state_dict().items()}
    base_before = {k: v.clone() for k, v in backbone.unet.state_dict().items()}
    method = method_from_yaml("dpsgd_lora", epochs=2, batch_size=4, learning_rate=0.01, mechanism_seed=1)
    adaptation = method.adapt(backbone, data, context(run, tmp_path, seed=0))
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
