"""Saving a built world in the standard diffusers layout: the pipeline index, portable configs,
fp16 weights, and the checksums recorded in ``world.json``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from transformers import CLIPTokenizer


def assemble_pipeline_index(out: Path) -> None:
    """Assemble the components into a StableDiffusionPipeline and save its model_index.json."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(out / "vae"),
        text_encoder=CLIPTextModel.from_pretrained(out / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(out / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(out / "unet"),
        scheduler=DDIMScheduler.from_pretrained(out / "scheduler"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)


def strip_build_paths(out: Path) -> None:
    """Drop ``_name_or_path`` (the build folder) from saved configs: it is machine-specific
    and would make two identical builds in different folders differ."""
    for f in sorted(out.rglob("config.json")):
        config = json.loads(f.read_text())
        if config.pop("_name_or_path", None) is not None:
            f.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def to_fp16_in_place(out: Path) -> None:
    for f in sorted(out.rglob("*.safetensors")):
        tensors = load_file(f)
        save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, f)


def checksums(out: Path) -> dict[str, str]:
    return {
        str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(out.rglob("*")) if f.is_file() and f.name != "world.json"
    }
