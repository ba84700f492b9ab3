"""The suite's sampler against diffusers' StableDiffusionPipeline, its seeding, and the one CFG call."""

import torch
from diffusers import StableDiffusionPipeline

from benchmark.config import SamplerConfig, default_config
from benchmark.sampling.plan import items_for_texts
from benchmark.sampling.sampler import (batched_predictions, cfg_predictions, combine, generate_images,
                                        initial_noise, sample_latents)
from tests.sampling.helpers import micro_backbone


def test_sampler_matches_stable_diffusion_pipeline(micro_world):
    bb = micro_backbone()
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
    # The sampler's negative prompt is diffusers' negative_prompt.
    negative = default_config(SamplerConfig, scheduler="ddim", num_inference_steps=6, guidance_scale=3.0,
                              negative_prompt="a square")
    with torch.no_grad():
        neg = bb.text_encoder(bb.tokenize(["a square"] * 2))[0]
    ours = sample_latents(bb.unet, bb.scheduler, cond, neg, [11, 12], negative, shape)
    theirs = pipe(prompts, negative_prompt=["a square"] * 2, height=32, width=32, num_inference_steps=6,
                  guidance_scale=3.0, latents=start, output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_each_image_depends_only_on_its_own_seed(micro_world):
    bb = micro_backbone()
    cfg = default_config(SamplerConfig, num_inference_steps=3)
    with torch.no_grad():
        cond = bb.text_encoder(bb.tokenize(["a red circle"] * 3))[0]
        uncond = bb.text_encoder(bb.tokenize([""] * 3))[0]
    batch = sample_latents(bb.unet, bb.scheduler, cond, uncond, [1, 2, 3], cfg, (4, 8, 8))
    alone = sample_latents(bb.unet, bb.scheduler, cond[1:2], uncond[1:2], [2], cfg, (4, 8, 8))
    torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batch[0], batch[2])


def test_the_cfg_call_is_one_batched_unet_call_split_per_group(micro_world):
    bb = micro_backbone()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, *bb.latent_shape, generator=g)
    t = torch.tensor(500)
    cond, uncond = bb.encode_prompts(["a red circle", "a blue star"]), bb.encode_prompts(["", ""])
    eps_u, eps_c = cfg_predictions(bb.unet, x, t, cond, uncond)
    with torch.no_grad():
        one = bb.unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
    assert torch.equal(eps_u, one[:2]) and torch.equal(eps_c, one[2:])  # the very call diffusers makes
    torch.testing.assert_close(combine(eps_u, eps_c, 3.0), eps_u + 3.0 * (eps_c - eps_u))
    parts = batched_predictions(bb.unet, t, [(x, uncond), (x, cond), (x[1:], cond[:1])])
    assert [len(p) for p in parts] == [2, 2, 1] and torch.equal(parts[0], eps_u)


def test_generate_images_decodes_one_batch_of_items(micro_world):
    bb = micro_backbone()
    cfg = default_config(SamplerConfig, num_inference_steps=2)
    items = items_for_texts(["a red circle", "a blue star"], [5, 6])
    images = generate_images(bb, items, cfg)
    assert images.dtype == torch.uint8 and images.shape == (2, 3, 32, 32)
    latents = sample_latents(bb.unet, bb.scheduler, bb.encode_prompts(["a red circle", "a blue star"]),
                             bb.encode_prompts(["", ""]), [5, 6], cfg, bb.latent_shape)
    assert torch.equal(images, bb.decode_latents(latents))
