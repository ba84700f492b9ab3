"""The backbone is put on the strategy's device once, when it loads (no GPU needed to check it)."""

from __future__ import annotations

import torch

import benchmark.run as run_module
from benchmark.config import validate_config
from benchmark.lightning import distributed
from tests.helpers import SMOKE, compose


def test_run_loads_the_backbone_on_the_rank_device(run_job, monkeypatch):
    seen = []
    real = run_module.load_backbone

    def spy(cfg, device=None):
        seen.append(device)
        backbone = real(cfg, device)
        for module in (backbone.text_encoder, backbone.unet, backbone.vae):
            seen.append({p.device for p in module.parameters()})
        return backbone

    monkeypatch.setattr(run_module, "load_backbone", spy)
    run_job(["method=none", "eval.num_images=2", "eval.metrics=[]"])
    expected = distributed.rank_device(validate_config(compose(SMOKE)).strategy)
    assert seen[0] == expected == torch.device("cpu")
    assert all(devices == {expected} for devices in seen[1:])
