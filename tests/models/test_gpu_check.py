"""benchmark.gpu_check's comparison with diffusers, dry-run on the CPU (slow)."""

from __future__ import annotations

import pytest
import torch

from benchmark import gpu_check

pytestmark = pytest.mark.slow


def _gpu_check():
    return gpu_check


def test_suite_sampler_draws_diffusers_pixels_on_the_same_model_and_seeds(sd15_reduced):
    out = _gpu_check().sampler_vs_diffusers(sd15_reduced, torch.device("cpu"), torch.float32, 64, batch=2, steps=3,
                                            repeats=1)
    assert out["mean_abs_pixel_diff_vs_diffusers"] < 0.5  # the same work, so the timing ratio is fair
    assert out["suite_images_per_s"] > 0 and out["sampling_ratio_suite_over_diffusers"] > 0


def test_wrong_placement_fails_loudly(sd15_reduced):
    from benchmark.config import ModelConfig, default_config
    from benchmark.models.backbone import load_backbone

    module = _gpu_check()
    bb = load_backbone(default_config(ModelConfig, name="sd15", pretrained=str(sd15_reduced), resolution=64,
                                      dtype="float32"), "cpu")
    module._check_placement(bb, torch.device("cpu"), torch.float32)
    with pytest.raises(module.CheckFailed, match=r"backbone.text_encoder parameters are on .*expected cuda"):
        module._check_placement(bb, torch.device("cuda"), torch.float16)
