"""The offline SD-shaped builder: its folder loads through model=sd15's path, with SD's layout."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

from benchmark.config import validate_config
from benchmark.models.backbone import ModelLoadError, load_backbone
from benchmark.models.sd_shaped import VOCAB_SIZE, text_config, unet_config, vae_config
from tests.helpers import compose


def _model_cfg(*overrides: str):
    return validate_config(compose(["logger=none", *overrides])).model


def _sd15(folder, *extra: str):
    return _model_cfg("model=sd15", f"model.pretrained={folder}", "model.dtype=float32", "model.resolution=64", *extra)


def test_folder_loads_through_the_sd15_path_with_sd_layout(sd15_reduced):
    bb = load_backbone(_sd15(sd15_reduced))
    assert bb.world_dir is None and bb.name == "sd15"
    assert len(bb.tokenizer) == VOCAB_SIZE == 49408 and bb.tokenizer.model_max_length == 77
    assert bb.tokenize(["a photo of a cat"])[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert bb.text_encoder.config.hidden_size == bb.unet.config.cross_attention_dim
    assert bb.text_encoder.config.max_position_embeddings == 77
    assert type(bb.scheduler).__name__ == "PNDMScheduler" and bb.scheduler.config.prediction_type == "epsilon"
    assert bb.unet.config.down_block_types[-1] == "DownBlock2D" and len(bb.unet.config.block_out_channels) == 4
    assert bb.latent_shape == (4, 8, 8) and bb.latent_scale == pytest.approx(0.18215)
    emb = bb.encode_prompts(["a photo of a cat"])
    assert emb.shape == (1, 77, bb.text_encoder.config.hidden_size)
    images = bb.decode_latents(torch.randn(1, *bb.latent_shape))
    assert images.shape == (1, 3, 64, 64) and images.dtype == torch.uint8


def test_sd15_shaped_config_points_clip_at_the_built_folder(sd15_reduced):
    from benchmark.metrics.encoders import load_clip

    cfg = _model_cfg("model=sd15_shaped", f"model.pretrained={sd15_reduced}", "model.resolution=64")
    assert cfg.clip_model == f"{sd15_reduced}/clip" and cfg.inception is False and cfg.dtype == "float32"
    clip, processor = load_clip(cfg.clip_model)
    assert clip.config.vision_config.patch_size == 14 and clip.config.vision_config.image_size == 224
    assert len(processor.tokenizer) == VOCAB_SIZE
    text = processor.tokenizer(["a cat"], return_tensors="pt", padding=True)
    assert clip.get_text_features(text.input_ids).shape[-1] == clip.config.projection_dim


def test_sd21_layout_is_v_prediction_with_its_own_text_width(sd21_reduced):
    bb = load_backbone(_model_cfg("model=sd21", f"model.pretrained={sd21_reduced}", "model.dtype=float32",
                                  "model.resolution=64"))
    assert bb.scheduler.config.prediction_type == "v_prediction"
    assert bb.unet.config.cross_attention_dim == bb.text_encoder.config.hidden_size != 64
    assert bb.unet.config.use_linear_projection is True


def test_full_size_configs_are_sd_v15_and_v21():
    assert text_config("sd15", False)["hidden_size"] == 768 and text_config("sd15", False)["num_hidden_layers"] == 12
    assert text_config("sd21", False)["hidden_size"] == 1024 and text_config("sd21", False)["num_hidden_layers"] == 23
    unet = unet_config("sd15", False, 768)
    assert unet["block_out_channels"] == [320, 640, 1280, 1280] and unet["sample_size"] == 64
    assert unet_config("sd21", False, 1024)["attention_head_dim"] == [5, 10, 20, 20]
    assert unet_config("sd21", False, 1024)["sample_size"] == 96
    assert vae_config("sd15", False)["block_out_channels"] == [128, 256, 512, 512]


def _copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("clip"))
    return dst


def _edit(path, **changes):
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def test_cross_attention_width_mismatch_names_both(sd15_reduced, tmp_path):
    folder = _copy(sd15_reduced, tmp_path / "bad")
    _edit(folder / "unet" / "config.json", cross_attention_dim=48)
    with pytest.raises(ModelLoadError, match=r"cross_attention_dim=48.*hidden_size=64"):
        load_backbone(_sd15(folder))


def test_tokenizer_longer_than_text_positions_is_refused(sd15_reduced, tmp_path):
    folder = _copy(sd15_reduced, tmp_path / "bad")
    _edit(folder / "tokenizer" / "tokenizer_config.json", model_max_length=100)
    with pytest.raises(ModelLoadError, match=r"model_max_length=100.*max_position_embeddings=77"):
        load_backbone(_sd15(folder))


def test_float16_on_cpu_loads_float32_with_a_warning(sd15_reduced, caplog):
    with caplog.at_level(logging.WARNING, logger="benchmark.models.backbone"):
        bb = load_backbone(_sd15(sd15_reduced, "model.dtype=float16"), device="cpu")
    assert bb.unet.dtype == torch.float32 and bb.text_encoder.dtype == torch.float32
    assert "model.dtype=float16 on the CPU" in caplog.text


def test_resolution_the_vae_cannot_encode_is_refused(sd15_reduced):
    with pytest.raises(ModelLoadError, match=r"model.resolution=60"):
        load_backbone(_sd15(sd15_reduced, "model.resolution=60"))


def test_the_backbone_goes_to_the_device_it_is_given(sd15_reduced):
    bb = load_backbone(_sd15(sd15_reduced), device=torch.device("meta"))
    for module in (bb.text_encoder, bb.unet, bb.vae):
        assert {p.device.type for p in module.parameters()} == {"meta"}


@pytest.mark.parametrize("variant,text,unet", [("sd15", 123_060_480, 859_520_964), ("sd21", 340_387_840, 865_910_724)])
def test_full_size_parameter_counts_match_the_released_checkpoints(variant, text, unet):
    """Built on the meta device (no memory): every count equals that of the released weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from benchmark.models.sd_shaped import build_clip_model

    def count(module):
        return sum(p.numel() for p in module.parameters())

    with torch.device("meta"):
        encoder = CLIPTextModel(CLIPTextConfig(**text_config(variant, False)))
        assert count(encoder) == text
        assert count(UNet2DConditionModel(**unet_config(variant, False, encoder.config.hidden_size))) == unet
        assert count(AutoencoderKL(**vae_config(variant, False))) == 83_653_863
        if variant == "sd15":
            assert count(build_clip_model(False)) == 427_616_513  # openai/clip-vit-large-patch14
