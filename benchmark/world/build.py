"""Build (pretrain) the offline world's models on its public split.

Stages, each saved into the output folder in the standard diffusers / transformers
layout and skipped when already present (so an interrupted build resumes):

1. ``attribute_classifier/`` — the judge, trained on generator ground truth.
2. ``vae/`` — a KL autoencoder on public images; latents scaled to unit variance.
3. ``clip/`` and ``text_encoder/`` + ``tokenizer/`` — a CLIP pair trained contrastively
   on public and archive captions, then frozen (as Stable Diffusion freezes CLIP).
4. ``unet/`` + ``scheduler/`` — the conditional UNet, trained with v-prediction on a
   zero-terminal-SNR schedule against the frozen text encoder, EMA weights kept.

The training loops are plain PyTorch with tqdm bars: this is a one-off pretraining
script, not one of the benchmarked methods, and Lightning adds nothing here.
"""

from __future__ import annotations

import copy
import shutil
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

from benchmark.world import generator as G
from benchmark.world.architectures import (
    SCALES,
    AttributeClassifier,
    WorldScale,
    make_clip,
    make_scheduler,
    make_unet,
    make_vae,
)
from benchmark.world.layout import assemble_pipeline_index, strip_build_paths, to_fp16_in_place, checksums
from benchmark.world.public_split import PublicSplit, to_tensor
from benchmark.world.tokenizer import build_world_tokenizer
from benchmark.world.vocabulary import vocabulary_words

IMAGE_MEAN = IMAGE_STD = [0.5, 0.5, 0.5]  # pixel values in [-1, 1] everywhere in the world


def _cosine_lr(step: int, total: int, warmup: int = 200) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _train_loop(name, params, steps, lr, loss_fn, progress=True, on_step=None, stop_at=None):
    """AdamW on a warm-up + cosine schedule of ``steps``; ``stop_at`` ends it early."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine_lr(s, steps))
    bar = tqdm(range(stop_at or steps), desc=name, disable=not progress, mininterval=2.0)
    ema_loss = None
    for step in bar:
        loss = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if on_step:
            on_step(step)
        ema_loss = loss.item() if ema_loss is None else 0.98 * ema_loss + 0.02 * loss.item()
        bar.set_postfix(loss=f"{ema_loss:.4f}", refresh=False)
    return ema_loss


def train_classifier(out: Path, scale: WorldScale, seed: int, progress: bool) -> None:
    """Train the attribute judge on every attribute combination, private style included."""
    rng = np.random.default_rng(seed + 1)
    combos = [G.ShapeAttributes(*c) for c in itertools.product(G.SHAPES, G.COLOURS, G.FILLS, G.BACKGROUNDS)]
    n = max(4000, scale.classifier_steps * 8)
    attrs = [combos[i] for i in rng.integers(len(combos), size=n)]
    images = to_tensor(np.stack([G.render_shape_image(a, rng) for a in attrs]))
    labels = {k: torch.tensor([v.index(getattr(a, k)) for a in attrs]) for k, v in AttributeClassifier.HEADS.items()}
    model = AttributeClassifier()
    gen = torch.Generator().manual_seed(seed)

    def loss_fn(step):
        idx = torch.randint(n, (128,), generator=gen)
        x = images[idx]
        # Light noise so the judge is not thrown by the small artefacts of generated images.
        x = x + 0.06 * torch.randn(x.shape, generator=gen)
        logits = model(x)
        return sum(F.cross_entropy(logits[k], labels[k][idx]) for k in logits)

    model.train()
    _train_loop("attribute classifier", list(model.parameters()), scale.classifier_steps, 2e-3, loss_fn, progress)
    model.eval()
    folder = out / "attribute_classifier"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"heads": {k: list(v) for k, v in model.HEADS.items()}}, indent=1))


def codec_training_images(data: PublicSplit, seed: int) -> np.ndarray:
    """What the VAE learns to reconstruct: every attribute combination, plus the archive.

    The VAE is the world's generic image codec, as Stable Diffusion's VAE can encode any
    natural image, so it sees every combination the renderer can draw, private style
    and held-out pairs included. Only the text encoder and the UNet, the parts that map
    words to pictures, are kept from the private style and the held-out pairs.
    """
    rng = np.random.default_rng(seed + 2)
    combos = [G.ShapeAttributes(*c) for c in itertools.product(G.SHAPES, G.COLOURS, G.FILLS, G.BACKGROUNDS)]
    n = max(len(combos), len(data.attrs) // 3)
    every_combo = np.stack([G.render_shape_image(combos[i], rng) for i in rng.integers(len(combos), size=n)])
    return np.concatenate([data.shape_images, every_combo, data.archive_images])


def train_vae(out: Path, data: PublicSplit, scale: WorldScale, seed: int, progress: bool) -> None:
    torch.manual_seed(seed + 2)
    vae = make_vae(scale)
    images = to_tensor(codec_training_images(data, seed))
    gen = torch.Generator().manual_seed(seed + 2)

    def loss_fn(step):
        x = images[torch.randint(len(images), (64,), generator=gen)]
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample(generator=None)).sample
        kl = post.kl().mean() / x[0].numel()
        return F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-4 * kl

    vae.train()
    _train_loop("vae", list(vae.parameters()), scale.vae_steps, 2e-3, loss_fn, progress)
    vae.eval()
    with torch.no_grad():
        lat = torch.cat([vae.encode(images[i:i + 512]).latent_dist.mean for i in range(0, min(len(images), 4096), 512)])
    vae.register_to_config(scaling_factor=float(1.0 / lat.std()))
    vae.save_pretrained(out / "vae")


def train_clip(out: Path, data: PublicSplit, scale: WorldScale, seed: int, progress: bool) -> None:
    torch.manual_seed(seed + 3)
    tokenizer = build_world_tokenizer(vocabulary_words(), scale.model_max_length)
    clip = make_clip(scale, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)

    def loss_fn(step):
        images, captions = data.sample(256)
        tok = tokenizer(captions, padding="max_length", max_length=scale.model_max_length,
                        truncation=True, return_tensors="pt")
        o = clip(input_ids=tok.input_ids, attention_mask=tok.attention_mask,
                 pixel_values=to_tensor(images), return_loss=True)
        return o.loss

    clip.train()
    _train_loop("clip", list(clip.parameters()), scale.clip_steps, 1e-3, loss_fn, progress)
    clip.eval()
    clip.save_pretrained(out / "clip")
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            do_resize=False, do_center_crop=False, do_rescale=True, do_normalize=True,
            image_mean=IMAGE_MEAN, image_std=IMAGE_STD, size={"shortest_edge": G.IMAGE_SIZE},
            crop_size={"height": G.IMAGE_SIZE, "width": G.IMAGE_SIZE},
        ),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(out / "clip")
    tokenizer.save_pretrained(out / "tokenizer")
    # The diffusion text encoder is CLIP's text tower, as in Stable Diffusion.
    from transformers import CLIPTextModel

    text_encoder = CLIPTextModel(clip.config.text_config)
    missing = text_encoder.load_state_dict(
        {k.removeprefix("text_model."): v for k, v in clip.state_dict().items() if k.startswith("text_model.")},
        strict=False,
    )
    if missing.missing_keys:
        raise RuntimeError(f"text tower keys not copied: {missing.missing_keys[:5]}")
    text_encoder.save_pretrained(out / "text_encoder")


def train_unet(out: Path, data: PublicSplit, scale: WorldScale, seed: int, progress: bool) -> None:
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel

    torch.manual_seed(seed + 4)
    tokenizer = CLIPTokenizer.from_pretrained(out / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(out / "text_encoder").eval().requires_grad_(False)
    vae = AutoencoderKL.from_pretrained(out / "vae").eval().requires_grad_(False)
    scheduler = make_scheduler()
    unet = make_unet(scale, text_encoder.config.hidden_size)
    ema = copy.deepcopy(unet).requires_grad_(False)

    with torch.no_grad():  # encode every distinct image once; sample latents per step
        def encode(images):
            moments = [vae.encode(to_tensor(images[i:i + 512])).latent_dist for i in range(0, len(images), 512)]
            return torch.cat([m.mean for m in moments]), torch.cat([m.std for m in moments])

        shape_mu, shape_sd = encode(data.shape_images)
        arch_mu, arch_sd = encode(data.archive_images)
    sf = vae.config.scaling_factor
    text_cache: dict[str, torch.Tensor] = {}

    def embed(captions):
        missing = [c for c in set(captions) if c not in text_cache]
        if missing:
            tok = tokenizer(missing, padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt")
            with torch.no_grad():
                hs = text_encoder(tok.input_ids)[0]
            text_cache.update(zip(missing, hs))
        return torch.stack([text_cache[c] for c in captions])

    rng = np.random.default_rng(seed + 4)
    gen = torch.Generator().manual_seed(seed + 4)
    n_shape = len(data.attrs)

    def loss_fn(step):
        idx = rng.integers(len(data), size=scale.unet_batch)
        mus, sds = [], []
        for i in idx:
            if i < n_shape:
                mus.append(shape_mu[i]); sds.append(shape_sd[i])
            else:
                j = data.archive_index[i - n_shape]
                mus.append(arch_mu[j]); sds.append(arch_sd[j])
        captions = [data.caption(i, rng) for i in idx]
        captions = ["" if rng.random() < 0.1 else c for c in captions]  # for classifier-free guidance
        mu, sd = torch.stack(mus), torch.stack(sds)
        latents = (mu + sd * torch.randn(mu.shape, generator=gen)) * sf
        noise = torch.randn(latents.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=gen)
        noisy = scheduler.add_noise(latents, noise, t)
        target = scheduler.get_velocity(latents, noise, t)
        pred = unet(noisy, t, embed(captions)).sample
        return F.mse_loss(pred, target)

    def update_ema(step):
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        if (step + 1) % 2000 == 0 and step + 1 < (scale.unet_stop_step or scale.unet_steps):
            ema.save_pretrained(out / "unet_partial")  # lets a long build be inspected midway

    unet.train()
    _train_loop("unet", list(unet.parameters()), scale.unet_steps, 5e-4, loss_fn, progress, on_step=update_ema,
                stop_at=scale.unet_stop_step)
    scheduler.save_pretrained(out / "scheduler")
    ema.save_pretrained(out / "unet")
    shutil.rmtree(out / "unet_partial", ignore_errors=True)


# Each stage and the folder whose weights show it finished.
STAGES = {"attribute_classifier": "attribute_classifier", "vae": "vae", "clip": "text_encoder", "unet": "unet"}


def build_world(out: Path, scale_name: str = "full", seed: int = 0, progress: bool = True,
                fp16: bool = True, force: bool = False) -> Path:
    """Build the world into ``out`` (resuming finished stages) and return ``out``."""
    scale = SCALES[scale_name]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    timings = {}
    t0 = time.time()
    data = PublicSplit(scale, seed)
    timings["data_s"] = time.time() - t0
    steps = {
        "attribute_classifier": lambda: train_classifier(out, scale, seed, progress),
        "vae": lambda: train_vae(out, data, scale, seed, progress),
        "clip": lambda: train_clip(out, data, scale, seed, progress),
        "unet": lambda: train_unet(out, data, scale, seed, progress),
    }
    for stage, folder in STAGES.items():
        done = any((out / folder).glob("*.safetensors"))
        if done and not force:
            continue
        t = time.time()
        steps[stage]()
        timings[f"{stage}_s"] = round(time.time() - t, 1)
    assemble_pipeline_index(out)
    strip_build_paths(out)
    if fp16:
        to_fp16_in_place(out)
    previous = out / "world.json"
    if previous.is_file():  # resuming: keep the timings of stages trained earlier
        timings = {**json.loads(previous.read_text()).get("timings", {}), **timings}
    meta = {
        "recipe_version": G.WORLD_RECIPE_VERSION,
        "scale": scale_name,
        "seed": seed,
        "scale_settings": scale.__dict__,
        "torch_version": torch.__version__,
        "dtype": "float16" if fp16 else "float32",
        "timings": timings,
        "checksums": checksums(out),
    }
    (out / "world.json").write_text(json.dumps(meta, indent=1, default=list))
    return out
