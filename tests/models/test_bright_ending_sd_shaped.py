"""Bright Ending capture on SD v1.5's layout (three cross-attention down blocks at three resolutions)."""

import pytest
import torch

from benchmark.sampling.attention import cross_attention_modules, end_token_index
from tests.sampling.test_attention import hand_end_token_attention, record_mask


@pytest.mark.parametrize("layers", ["latent", "all"])
@pytest.mark.slow  # keeps the default suite within 3 minutes; CI's slow pass runs it
def test_mask_equals_hand_computation_on_an_sd15_shaped_unet(sd15_reduced, layers):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTokenizer

    unet = UNet2DConditionModel.from_pretrained(sd15_reduced / "unet").eval()
    tokenizer = CLIPTokenizer.from_pretrained(sd15_reduced / "tokenizer")
    assert len(cross_attention_modules(unet, "all")) == 3 and len(cross_attention_modules(unet, "latent")) == 1
    texts = ["a photo of a cat", "an oil painting of a lighthouse at dusk by the sea"]
    g = torch.Generator().manual_seed(1)
    embeds = torch.randn(2, tokenizer.model_max_length, unet.config.cross_attention_dim, generator=g)
    latents = torch.randn(2, 4, 8, 8, generator=g)
    idx = end_token_index(tokenizer, texts)
    got = record_mask(unet, latents, torch.tensor(300), embeds, idx, layers)
    want = hand_end_token_attention(unet, latents, torch.tensor(300), embeds, idx, layers)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
