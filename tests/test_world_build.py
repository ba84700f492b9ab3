"""The world build: standard layout, integrity of the shipped weights, reproducibility."""

import json

import pytest
import torch
from diffusers import StableDiffusionPipeline

from benchmark.models.backbone import PACKAGED_WORLD
from benchmark.world.build import build_world, checksums
from benchmark.world.generator import WORLD_RECIPE_VERSION

LAYOUT = ["model_index.json", "tokenizer", "text_encoder", "unet", "vae", "scheduler", "clip",
          "attribute_classifier", "world.json"]


def test_micro_world_has_the_stable_diffusion_layout(micro_world):
    for name in LAYOUT:
        assert (micro_world / name).exists(), name
    meta = json.loads((micro_world / "world.json").read_text())
    assert meta["recipe_version"] == WORLD_RECIPE_VERSION and meta["scale"] == "micro"
    assert checksums(micro_world) == meta["checksums"]


@pytest.mark.skipif(not (PACKAGED_WORLD / "world.json").exists(), reason="packaged world not built")
def test_shipped_world_is_intact_fp16_and_loads_through_from_pretrained():
    meta = json.loads((PACKAGED_WORLD / "world.json").read_text())
    assert meta["recipe_version"] == WORLD_RECIPE_VERSION and meta["scale"] == "full"
    assert checksums(PACKAGED_WORLD) == meta["checksums"], "shipped weights differ from world.json"
    from safetensors.torch import load_file
    import torch

    unet = load_file(PACKAGED_WORLD / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(t.dtype == torch.float16 for t in unet.values())
    pipe = StableDiffusionPipeline.from_pretrained(PACKAGED_WORLD, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size


@pytest.mark.slow
def test_the_build_is_reproducible(tmp_path):
    first = build_world(tmp_path / "a", "micro", seed=0, progress=False)
    second = build_world(tmp_path / "b", "micro", seed=0, progress=False)
    assert checksums(first) == checksums(second)
