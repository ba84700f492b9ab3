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


@pytest.mark.slow
def test_prompt_words_pretraining_never_uses_are_shrunk_and_nothing_else(micro_world, tmp_path):
    import shutil

    from safetensors.torch import load_file
    from transformers import CLIPTokenizer

    from benchmark.world import generator as G
    from benchmark.world.token_rows import TOKEN_TABLES, UNTRAINED_ROW_SCALE, shrink_untrained_rows

    world = shutil.copytree(micro_world, tmp_path / "w")
    before = {f: load_file(world / f)[k].float() for f, k in TOKEN_TABLES.items()}
    archive = G.archive_entries() + G.motif_entries(2)
    assert shrink_untrained_rows(world, archive) == 10
    tok = CLIPTokenizer.from_pretrained(world / "tokenizer")
    ids = [tok.convert_tokens_to_ids(w + "</w>") for w in ("style", "in", "picture")]
    for f, k in TOKEN_TABLES.items():
        after = load_file(world / f)[k].float()
        changed = (after != before[f]).any(dim=1).nonzero().flatten().tolist()
        assert set(ids) <= set(changed) and len(changed) <= 10
        torch.testing.assert_close(after[ids], before[f][ids] * UNTRAINED_ROW_SCALE, rtol=2e-3, atol=1e-4)  # fp16
    # "red" is in pretraining captions: untouched.
    red = tok.convert_tokens_to_ids("red</w>")
    assert torch.equal(load_file(world / "text_encoder/model.safetensors")[TOKEN_TABLES["text_encoder/model.safetensors"]][red].float(),
                       before["text_encoder/model.safetensors"][red])
