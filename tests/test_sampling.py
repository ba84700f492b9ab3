"""The suite's sampler against diffusers' StableDiffusionPipeline, and its seeding."""

import torch
from diffusers import StableDiffusionPipeline

from benchmark.config import ModelConfig, SamplerConfig, default_config
from benchmark.models.backbone import load_backbone
from benchmark.sampling.sampler import initial_noise, sample_latents


def _backbone():
    return load_backbone(default_config(ModelConfig, "model=micro"))


def test_sampler_matches_stable_diffusion_pipeline(micro_world):
    bb = _backbone()
    prompts = ["a red circle on a white background", "a blue star"]
    cfg = default_config(SamplerConfig, scheduler="ddim", num_inference_steps=6, guidance_scale=3.0)
    ids = bb.tokenize(prompts)
    with torch.no_grad():
        cond = bb.text_encoder(ids)[0]
        uncond = bb.text_encoder(bb.tokenize([""] * 2))[0]
    shape = (4, 8, 8)
    ours = sample_latents(bb.unet, bb.scheduler, cond, uncond, [11, 12], cfg, shape)

    pipe = StableDiffusionPipeline.from_pretrained(micro_world, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    start = initial_noise([11, 12], shape, "cpu", torch.float32)
    theirs = pipe(prompts, height=32, width=32, num_inference_steps=6, guidance_scale=3.0,
                  latents=start, output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_each_image_depends_only_on_its_own_seed(micro_world):
    bb = _backbone()
    cfg = default_config(SamplerConfig, num_inference_steps=3)
    with torch.no_grad():
        cond = bb.text_encoder(bb.tokenize(["a red circle"] * 3))[0]
        uncond = bb.text_encoder(bb.tokenize([""] * 3))[0]
    batch = sample_latents(bb.unet, bb.scheduler, cond, uncond, [1, 2, 3], cfg, (4, 8, 8))
    alone = sample_latents(bb.unet, bb.scheduler, cond[1:2], uncond[1:2], [2], cfg, (4, 8, 8))
    torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batch[0], batch[2])
