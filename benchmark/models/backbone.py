"""One interface to a Stable-Diffusion-layout backbone, real or from the offline world.

``model=tiny`` and ``model=sd15`` differ only in the folder or hub id handed to
``StableDiffusionPipeline.from_pretrained``: ``builtin:tiny`` names the world shipped in
the package, ``builtin:micro`` a small build of the same code made on first use (tests).
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from diffusers import StableDiffusionPipeline

from benchmark.config import ModelConfig
from benchmark.utils.cache import cache_root

log = logging.getLogger(__name__)

PACKAGED_WORLD = Path(__file__).resolve().parent.parent / "assets" / "tiny_world"


class ModelLoadError(RuntimeError):
    """The configured backbone cannot be loaded; the message says how to fix it."""


def _micro_world_dir() -> Path:
    """Build the micro world into the cache once (about a minute on two cores)."""
    from benchmark.world.build import build_world  # the training code loads only when a build is needed
    from benchmark.world.generator import WORLD_RECIPE_VERSION

    folder = cache_root() / "worlds" / f"{WORLD_RECIPE_VERSION}-micro-seed0"
    if (folder / "world.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".micro.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test processes build it once
        if not (folder / "world.json").is_file():
            tmp = folder.with_name(folder.name + ".tmp")
            build_world(tmp, "micro", seed=0, progress=False)
            os.replace(tmp, folder)
    return folder


def resolve_pretrained(pretrained: str) -> str | Path:
    """Turn ``model.pretrained`` into a local folder or a hub id."""
    if pretrained == "builtin:tiny":
        if not (PACKAGED_WORLD / "model_index.json").is_file():
            raise ModelLoadError(
                f"the packaged tiny world is missing from {PACKAGED_WORLD}; rebuild it with "
                "`python scripts/build_tiny_world.py`"
            )
        return PACKAGED_WORLD
    if pretrained == "builtin:micro":
        return _micro_world_dir()
    if pretrained.startswith("builtin:"):
        raise ModelLoadError(f"model.pretrained={pretrained!r}: builtin worlds are 'builtin:tiny' and 'builtin:micro'")
    path = Path(os.path.expanduser(pretrained))
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(f"model.pretrained={pretrained!r} is a folder without model_index.json "
                                 "(expected the diffusers Stable Diffusion layout)")
        return path
    return pretrained


@dataclass
class Backbone:
    """The five components of a Stable Diffusion model, plus where they came from."""

    name: str
    source: str | Path
    tokenizer: object
    text_encoder: torch.nn.Module
    unet: torch.nn.Module
    vae: torch.nn.Module
    scheduler: object
    world_dir: Optional[Path]  # set for the offline world (its judge and encoders live there)
    embedding_radius: Optional[float] = None  # model.embedding_radius: DPAgg-TI's default R here
    resolution: Optional[int] = None  # model.resolution; None: the UNet's own sample_size x the VAE factor

    @property
    def latent_scale(self) -> float:
        return float(self.vae.config.scaling_factor)

    def add_placeholder_tokens(self, tokens: list[str], initializer_token: str) -> tuple[list[int], torch.Tensor]:
        """Add tokens to the tokenizer; return their ids and the initializer's embedding row."""
        init_ids = self.tokenizer.encode(initializer_token, add_special_tokens=False)
        if len(init_ids) != 1:
            raise ValueError(
                f"initializer_token {initializer_token!r} must be a single token of the tokenizer, "
                f"it is {len(init_ids)} tokens"
            )
        clashes = [t for t in tokens if t in self.tokenizer.get_vocab()]
        if clashes:
            raise ValueError(f"placeholder tokens already in the vocabulary: {clashes[:5]}; choose other names")
        self.tokenizer.add_tokens(tokens)
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        # The new rows are read from trainable parameters, so how they are initialised here is moot.
        self.text_encoder.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        init = self.text_encoder.get_input_embeddings().weight[init_ids[0]].detach().clone()
        return list(ids), init

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """Latents at ``model.resolution``: training encodes images at that size, so sampling
        must draw at it too (SD's UNet ``sample_size`` is only its training resolution)."""
        size = self.resolution // self.vae_scale_factor if self.resolution else self.unet.config.sample_size
        return (self.unet.config.in_channels, size, size)

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Text-encoder hidden states (B, L, D) in the UNet's dtype, on the encoder's device."""
        ids = self.tokenize(prompts).to(next(self.text_encoder.parameters()).device)
        return self.text_encoder(ids)[0].to(self.unet.dtype)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                              truncation=True, return_tensors="pt").input_ids

    @torch.no_grad()
    def encode_images(self, images_uint8: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent mean and std (already multiplied by the VAE scaling factor)."""
        device = next(self.vae.parameters()).device
        dtype = next(self.vae.parameters()).dtype
        mus, sds = [], []
        for i in range(0, len(images_uint8), batch_size):
            x = images_uint8[i:i + batch_size].to(device, dtype) / 127.5 - 1
            dist = self.vae.encode(x).latent_dist
            mus.append(dist.mean * self.latent_scale)
            sds.append(dist.std * self.latent_scale)
        return torch.cat(mus).float().cpu(), torch.cat(sds).float().cpu()

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> uint8 NCHW images."""
        x = self.vae.decode(latents / self.latent_scale).sample
        return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def check_components(text: dict, unet: dict, tokenizer_max_length: Optional[int], where: str) -> None:
    """Refuse components that do not fit together as Stable Diffusion's do, naming both sides.

    ``text`` / ``unet`` are the text encoder's and UNet's configs (``config.json`` of a local
    folder before loading, or the loaded modules' configs).
    """
    width, cross = text.get("hidden_size"), unet.get("cross_attention_dim")
    if isinstance(cross, (list, tuple)):  # per-block widths: every block must take the text width
        cross = next((c for c in cross if c != width), width)
    if width is not None and cross is not None and int(cross) != int(width):
        raise ModelLoadError(
            f"{where}: unet.cross_attention_dim={cross} (unet/config.json) differs from the text encoder's "
            f"hidden_size={width} (text_encoder/config.json): the UNet cannot attend to these text embeddings")
    positions = text.get("max_position_embeddings")
    if tokenizer_max_length is not None and positions is not None and int(tokenizer_max_length) > int(positions):
        raise ModelLoadError(
            f"{where}: tokenizer model_max_length={tokenizer_max_length} (tokenizer/tokenizer_config.json) is "
            f"longer than the text encoder's max_position_embeddings={positions} (text_encoder/config.json)")


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot read {path}: {err}") from None


def check_folder(folder: Path, where: str) -> None:
    """:func:`check_components` from a local folder's config files, before any weight is read."""
    text = _read_json(folder / "text_encoder" / "config.json")
    text = text.get("text_config", text)  # a CLIPModel config nests the text tower
    max_len = _read_json(folder / "tokenizer" / "tokenizer_config.json").get("model_max_length")
    check_components(text, _read_json(folder / "unet" / "config.json"), max_len, where)


def resolve_dtype(name: str, device: Optional[torch.device | str]) -> torch.dtype:
    """``model.dtype`` as a torch dtype; float16 on a CPU becomes float32 with a warning.

    Half-precision kernels are missing or very slow on CPUs, and the YAML of the real
    models sets float16 for GPUs, so a CPU run would otherwise crash or crawl mid-job.
    """
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ModelLoadError(f"model.dtype={name!r} is not a torch floating dtype (float32, float16, bfloat16)")
    on_cpu = torch.device(device).type == "cpu" if device is not None else not torch.cuda.is_available()
    if dtype == torch.float16 and on_cpu:
        log.warning("model.dtype=float16 on the CPU: loading the backbone in float32 instead "
                    "(set model.dtype=float32 to silence this)")
        return torch.float32
    return dtype


def load_backbone(cfg: ModelConfig, device: Optional[torch.device | str] = None) -> Backbone:
    """Load a backbone with ``StableDiffusionPipeline.from_pretrained`` (offline-safe errors).

    Components that do not fit together, and a resolution the VAE cannot encode, are refused
    before the weights load. With ``device`` the frozen modules are moved there once (the one
    place the backbone's device and dtype are decided); without it they stay on the CPU.
    """
    source = resolve_pretrained(cfg.pretrained)
    dtype = resolve_dtype(cfg.dtype, device)
    where = f"model.pretrained={cfg.pretrained!r}"
    if isinstance(source, Path):
        check_folder(source, where)
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            source, revision=cfg.revision, dtype=dtype, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False,
        )
    except Exception as err:  # hub and file errors come in many types; all mean "cannot load"
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        raise ModelLoadError(
            f"model.pretrained={cfg.pretrained!r} cannot be loaded{' (HF_HUB_OFFLINE is set)' if offline else ''}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. A hub model must be "
            "downloaded first (e.g. `huggingface-cli download <id>`), or give a local folder in the "
            "diffusers layout."
        ) from err
    check_components(pipe.text_encoder.config.to_dict(), dict(pipe.unet.config),
                     pipe.tokenizer.model_max_length, where)
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    if cfg.resolution % factor:
        raise ModelLoadError(f"model.resolution={cfg.resolution} is not a multiple of the VAE's downscale "
                             f"factor {factor} ({where})")
    for module in (pipe.text_encoder, pipe.unet, pipe.vae):
        module.requires_grad_(False).eval()
        if device is not None:
            module.to(device)
    world_dir = Path(source) if isinstance(source, Path) and (Path(source) / "world.json").is_file() else None
    return Backbone(cfg.name, source, pipe.tokenizer, pipe.text_encoder, pipe.unet, pipe.vae, pipe.scheduler, world_dir,
                    cfg.embedding_radius, cfg.resolution)
