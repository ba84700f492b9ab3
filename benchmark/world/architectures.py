"""Architectures of the offline world's models, at two scales of the same code.

``full`` is what ships inside the package; ``micro`` is a smaller, faster build used by
tests. Both are standard diffusers / transformers classes, so the saved world loads
through exactly the ``from_pretrained`` path a real Stable Diffusion checkpoint takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from torch import nn
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

from benchmark.world.generator import BACKGROUNDS, COLOURS, FILLS, IMAGE_SIZE, SHAPES


@dataclass(frozen=True)
class WorldScale:
    """Sizes and training budgets of one build of the world."""

    name: str
    text_width: int
    text_layers: int
    unet_channels: tuple[int, ...]
    unet_layers_per_block: int
    vae_channels: tuple[int, ...]
    num_public: int
    memorized_copies: int
    classifier_steps: int
    vae_steps: int
    clip_steps: int
    unet_steps: int
    unet_batch: int
    # Stop the UNet early on its cosine schedule (None: train it to the end). Later
    # checkpoints learn that stripes never appear on black so well that a textual-
    # inversion token can no longer reach the private style (results/world_build.md).
    unet_stop_step: int | None = None
    model_max_length: int = 20
    # Initial std of the text encoder's token embedding rows (transformers' default is
    # 0.02). At 0.02 the rows (norm 0.18 at width 64) are 30x smaller than the first
    # layer's update of the residual stream (norm ~5), so a word reaches the UNet only
    # through the layers, and a textual-inversion row has to grow to 27x the vocabulary
    # norm before it can carry a concept (results/world_noise_tolerance.md, v3). In
    # Stable Diffusion a TI row near the vocabulary's norm carries one (the premise of
    # DPAgg-TI's default R). Rows of norm ~2 give the input a share of the residual
    # stream comparable to one layer's update (results/world_build.md).
    token_init_std: float = 0.25


SCALES = {
    "full": WorldScale(
        name="full", text_width=64, text_layers=3, unet_channels=(64, 128),
        unet_layers_per_block=1, vae_channels=(16, 32, 32), num_public=24000,
        memorized_copies=150, classifier_steps=800, vae_steps=3500, clip_steps=1500,
        unet_steps=12000, unet_batch=64, unet_stop_step=4000,
    ),
    "micro": WorldScale(
        name="micro", text_width=32, text_layers=1, unet_channels=(32, 64),
        unet_layers_per_block=1, vae_channels=(16, 32, 32), num_public=600,
        memorized_copies=20, classifier_steps=60, vae_steps=60, clip_steps=60,
        unet_steps=80, unet_batch=32,
    ),
}


def make_clip(scale: WorldScale, vocab_size: int, bos_id: int, eos_id: int) -> CLIPModel:
    """A CLIP text/image pair; its text tower becomes the diffusion text encoder."""
    w = scale.text_width
    text = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=w, intermediate_size=2 * w,
        num_hidden_layers=scale.text_layers, num_attention_heads=4,
        max_position_embeddings=scale.model_max_length, projection_dim=w,
        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=eos_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=w, intermediate_size=2 * w, num_hidden_layers=scale.text_layers,
        num_attention_heads=4, image_size=IMAGE_SIZE, patch_size=4, projection_dim=w,
    )
    clip = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=w))
    torch.nn.init.normal_(clip.text_model.embeddings.token_embedding.weight, std=scale.token_init_std)
    return clip


def make_vae(scale: WorldScale) -> AutoencoderKL:
    """A 4x-downsampling KL autoencoder: 32x32x3 images <-> 8x8x4 latents."""
    n = len(scale.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=scale.vae_channels, layers_per_block=1,
        norm_num_groups=8, sample_size=IMAGE_SIZE,
    )


def make_unet(scale: WorldScale, cross_attention_dim: int) -> UNet2DConditionModel:
    """A conditional UNet on 8x8x4 latents with cross-attention at every resolution."""
    n = len(scale.unet_channels)
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
        block_out_channels=scale.unet_channels, layers_per_block=scale.unet_layers_per_block,
        cross_attention_dim=cross_attention_dim,
        # In these block types this number is the count of heads (a diffusers naming quirk).
        attention_head_dim=4, norm_num_groups=16,
    )


def make_scheduler() -> DDIMScheduler:
    """Zero-terminal-SNR v-prediction schedule (Lin et al. 2023).

    With the usual schedule the last training step still leaks signal, and a model
    trained on it cannot reach the world's white and black backgrounds (NOTES.md).
    """
    return DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
        beta_end=0.012, prediction_type="v_prediction", rescale_betas_zero_snr=True,
        timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )


class AttributeClassifier(nn.Module):
    """A CNN with one head per ground-truth attribute, trained on the generator's labels.

    It is the world's judge: does an image show the prompted shape and colour, and
    the private style? Inputs are images in [-1, 1], NCHW.
    """

    HEADS = {"shape": SHAPES, "colour": tuple(COLOURS), "fill": FILLS, "background": tuple(BACKGROUNDS)}

    def __init__(self, width: int = 32):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 4 * width),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleDict({k: nn.Linear(4 * width, len(v)) for k, v in self.HEADS.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(images)
        return {k: head(h) for k, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, list[str]]:
        """Attribute names predicted for a batch of images in [-1, 1]."""
        logits = self.eval()(images)
        return {k: [self.HEADS[k][i] for i in v.argmax(-1).tolist()] for k, v in logits.items()}
