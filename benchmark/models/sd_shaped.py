"""Random-weight models in Stable Diffusion's exact layout, built offline.

No checkpoint can be downloaded on our machines, yet the real-model path (``model=sd15
model.pretrained=<folder>``) must be run end to end. This module builds a folder that
``StableDiffusionPipeline.from_pretrained`` reads as it reads SD v1.5 or v2.1: the real
CLIP BPE tokenizer (77 positions, 49,408 tokens), a ``CLIPTextModel`` with SD's text
config, ``UNet2DConditionModel`` and ``AutoencoderKL`` with SD's block layout, SD's
scheduler config, and a CLIP ViT-L/14-shaped ``CLIPModel`` in ``clip/`` for the CLIP
score. Weights are random (seeded). ``reduced=True`` keeps every layout choice (block
types, four resolutions, the tokenizer and its vocabulary, v-prediction for v2.1) but
shrinks widths and depths so a CPU can train and sample it in seconds.

    python -m benchmark.models.sd_shaped /tmp/sd15 [--variant sd15|sd21] [--reduced]
    python -m benchmark model=sd15 model.pretrained=/tmp/sd15 model.clip_model=/tmp/sd15/clip

The BPE merges ship inside the ``open-clip-torch`` wheel (a dev/test dependency); the
file is read from the installed package without importing it.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
from pathlib import Path
from typing import Optional

import torch

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
VOCAB_SIZE = 49408  # 2 x 256 byte symbols + 48,894 merges + BOS + EOS
NUM_MERGES = 48894  # open_clip reads lines 1..48894 of the file (line 0 is a header)
MAX_LENGTH = 77

# Text encoder configs as shipped with the checkpoints (SD v1.x: OpenAI CLIP ViT-L/14's
# text tower; SD v2.x: OpenCLIP ViT-H's, penultimate layer kept: 23 layers).
TEXT = {
    "sd15": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 hidden_act="quick_gelu", projection_dim=768),
    "sd21": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                 hidden_act="gelu", projection_dim=512),
}
# Reduced: distinct widths per variant so a mismatch between variants cannot pass unnoticed.
TEXT_REDUCED = {
    "sd15": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4),
    "sd21": dict(hidden_size=96, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4),
}
RESOLUTION = {"sd15": 512, "sd21": 768}
REDUCED_RESOLUTION = 64  # 8x8 latents: CPU tests


def resolution(variant: str, reduced: bool) -> int:
    return REDUCED_RESOLUTION if reduced else RESOLUTION[variant]


def bpe_path() -> Path:
    """The CLIP BPE file inside the installed open-clip-torch package (not imported: it pulls timm)."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / BPE_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{BPE_FILE} not found: install open-clip-torch (pip install -e '.[dev]' "
                            "installs it), whose wheel ships CLIP's BPE merges")


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def clip_vocab_and_merges(path: Optional[Path] = None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary and merges, constructed exactly as open_clip's SimpleTokenizer does."""
    lines = gzip.open(path or bpe_path()).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:1 + NUM_MERGES]]
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise RuntimeError(f"{path or bpe_path()}: built {len(vocab)} tokens, expected {VOCAB_SIZE}")
    return vocab, merges


def build_tokenizer(variant: str):
    """SD's CLIPTokenizer: SD v1.x pads with EOS, SD v2.x (OpenCLIP) with ``!`` (id 0)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_LENGTH, bos_token=BOS, eos_token=EOS,
                         unk_token=EOS, pad_token=EOS if variant == "sd15" else "!")


def text_config(variant: str, reduced: bool) -> dict:
    cfg = dict(TEXT[variant], **(TEXT_REDUCED[variant] if reduced else {}))
    # Token ids as in the shipped configs (bos 0, eos 2 makes transformers pool at the argmax id: EOS).
    return dict(cfg, vocab_size=VOCAB_SIZE, max_position_embeddings=MAX_LENGTH, bos_token_id=0, eos_token_id=2,
                pad_token_id=1)


def unet_config(variant: str, reduced: bool, cross_dim: int) -> dict:
    """SD's UNet: four resolutions, cross-attention in the first three down / last three up blocks."""
    cfg = dict(
        sample_size=resolution(variant, reduced) // 8, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=[320, 640, 1280, 1280], norm_num_groups=32, cross_attention_dim=cross_dim,
        down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        # SD v1: 8 heads everywhere (diffusers calls it attention_head_dim); v2: 64-wide heads.
        attention_head_dim=8 if variant == "sd15" else [5, 10, 20, 20],
        use_linear_projection=variant == "sd21", flip_sin_to_cos=True, freq_shift=0,
    )
    if reduced:
        cfg.update(layers_per_block=1, block_out_channels=[32, 32, 64, 64], norm_num_groups=8,
                   attention_head_dim=4 if variant == "sd15" else [2, 2, 4, 4])
    return cfg


def vae_config(variant: str, reduced: bool) -> dict:
    """SD's KL VAE: 8x downscale, 4 latent channels, scaling factor 0.18215."""
    return dict(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=resolution(variant, reduced),
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[32, 32, 64, 64] if reduced else [128, 256, 512, 512],
        layers_per_block=1 if reduced else 2, norm_num_groups=8 if reduced else 32, scaling_factor=0.18215,
    )


def scheduler(variant: str):
    """The scheduler config shipped with the checkpoint (v1.5: PNDM eps; v2.1: DDIM v-prediction)."""
    from diffusers import DDIMScheduler, PNDMScheduler

    common = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  set_alpha_to_one=False, steps_offset=1)
    if variant == "sd15":
        return PNDMScheduler(**common, skip_prk_steps=True)
    return DDIMScheduler(**common, clip_sample=False, prediction_type="v_prediction")


def build_clip_model(reduced: bool):
    """A CLIP ViT-L/14-shaped CLIPModel (the CLIP score's): text tower as SD v1's, patch 14 at 224 px."""
    from transformers import CLIPConfig, CLIPModel

    text = text_config("sd15", reduced)
    vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  patch_size=14, image_size=224, hidden_act="quick_gelu", projection_dim=768)
    if reduced:
        vision.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=64 if reduced else 768))


def clip_processor(tokenizer):
    """OpenAI CLIP's preprocessing: resize 224 (short side), centre crop, its mean and std."""
    from transformers import CLIPImageProcessor, CLIPProcessor

    images = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                image_mean=[0.48145466, 0.4578275, 0.40821073],
                                image_std=[0.26862954, 0.26130258, 0.27577711])
    return CLIPProcessor(image_processor=images, tokenizer=tokenizer)


def build_sd_shaped(out: Path, variant: str = "sd15", reduced: bool = False, seed: int = 0,
                    with_clip: bool = True, dtype: torch.dtype = torch.float32,
                    init_device: Optional[torch.device | str] = None) -> Path:
    """Write a random-weight SD-layout model to ``out`` (diffusers layout) and return ``out``.

    ``out/clip`` holds the CLIP score's model (``model.clip_model=<out>/clip``).
    ``init_device="cuda"`` draws the random weights on the GPU: the full-size UNet's
    initialisation takes tens of seconds on a CPU (the GPU check's time budget).
    """
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if variant not in TEXT:
        raise ValueError(f"variant {variant!r}: choose one of {', '.join(TEXT)}")
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(variant)
    with torch.device(init_device or "cpu"):
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_config(variant, reduced)))
        width = text_encoder.config.hidden_size
        unet = UNet2DConditionModel(**unet_config(variant, reduced, width))
        vae = AutoencoderKL(**vae_config(variant, reduced))
        clip = build_clip_model(reduced) if with_clip else None
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler(variant), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    out = Path(out)
    if dtype != torch.float32:  # the checkpoints ship fp16 variants; random weights gain nothing from fp32 files
        pipe.to(dtype=dtype)
    pipe.save_pretrained(out, safe_serialization=True)
    if with_clip:
        # float32 always: the evaluator loads CLIP in its saved dtype and feeds it float32 pixels.
        clip.float().save_pretrained(out / "clip", safe_serialization=True)
        clip_processor(build_tokenizer("sd15")).save_pretrained(out / "clip")
    (out / "sd_shaped.json").write_text(json.dumps(
        {"variant": variant, "reduced": reduced, "seed": seed, "weights": "random",
         "resolution": resolution(variant, reduced)}, indent=1) + "\n")
    return out


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (the diffusers layout)")
    parser.add_argument("--variant", choices=sorted(TEXT), default="sd15")
    parser.add_argument("--reduced", action="store_true", help="tiny widths and depths (CPU tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-clip", action="store_true", help="skip the CLIP score model (out/clip)")
    args = parser.parse_args(argv)
    out = build_sd_shaped(args.out, args.variant, args.reduced, args.seed, with_clip=not args.no_clip)
    print(f"wrote {out}\n  python -m benchmark model={args.variant}_shaped model.pretrained={out}"
          + (f" model.resolution={REDUCED_RESOLUTION}" if args.reduced else ""))


if __name__ == "__main__":
    main()
