"""Bright Ending capture: the mask against a hand computation, processors restored, end-token positions."""

import math

import pytest
import torch
import torch.nn.functional as F

from benchmark.sampling.attention import (EndTokenCapture, MaskRecordingCFG, cross_attention_modules,
                                          end_token_index, masked_noise_magnitude, recording)
from benchmark.sampling.sampler import Guidance, noise_magnitude
from tests.sampling.helpers import micro_backbone, sample


def hand_end_token_attention(unet, latents, t, embeds, token_index, layers):
    """softmax(Q K^T / sqrt(d)) of the end token, by hand from each layer's inputs, averaged over
    heads and layers, upsampled to the latent size (forward hooks capture the layers' inputs)."""
    modules = cross_attention_modules(unet, layers)
    inputs = {}

    def keep(name):
        def hook(module, args, kwargs, output):  # returns None: the output is left alone
            inputs.setdefault(name, (args[0] if args else kwargs["hidden_states"], kwargs["encoder_hidden_states"]))
        return hook

    hooks = [m.register_forward_hook(keep(name), with_kwargs=True) for name, m in modules.items()]
    try:
        with torch.no_grad():
            unet(latents, t, encoder_hidden_states=embeds)
    finally:
        for h in hooks:
            h.remove()
    height, width = latents.shape[-2:]
    maps = []
    for name, attn in modules.items():
        hidden, context = inputs[name]
        b, n, _ = hidden.shape
        q = attn.to_q(hidden).view(b, n, attn.heads, -1).transpose(1, 2)  # (B, heads, N, d)
        k = attn.to_k(context).view(b, context.shape[1], attn.heads, -1).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)  # (B, heads, N, L)
        end = torch.stack([probs[i, :, :, token_index[i]] for i in range(b)]).mean(dim=1)  # (B, N)
        side = int(math.isqrt(n))
        layer = end.view(b, 1, side, side)
        if side != height:
            layer = F.interpolate(layer, size=(height, width), mode="bilinear", align_corners=False)
        maps.append(layer)
    return torch.stack(maps).mean(dim=0)


def record_mask(unet, latents, t, embeds, token_index, layers):
    with torch.no_grad(), recording(unet, layers) as record:
        unet(latents, t, encoder_hidden_states=embeds)
    return record.mask(torch.arange(len(latents)), token_index, tuple(latents.shape[-2:]))


def test_mask_equals_hand_computation_on_the_world_unet():
    b = micro_backbone()
    texts = ["a red circle", "a big blue striped square on white"]
    embeds = b.encode_prompts(texts)
    latents = torch.randn(2, *b.latent_shape, generator=torch.Generator().manual_seed(0))
    idx = end_token_index(b.tokenizer, texts)
    got = record_mask(b.unet, latents, torch.tensor(500), embeds, idx, "latent")
    want = hand_end_token_attention(b.unet, latents, torch.tensor(500), embeds, idx, "latent")
    assert got.shape == (2, 1, *b.latent_shape[1:])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # A different token gives a different map: the index really selects the column.
    other = record_mask(b.unet, latents, torch.tensor(500), embeds, idx - 1, "latent")
    assert not torch.allclose(other, got)


def test_processors_are_restored_after_sampling_and_after_an_error():
    b = micro_backbone()
    before = dict(b.unet.attn_processors)
    rule = MaskRecordingCFG(EndTokenCapture(b.tokenizer, layers="all"))
    sample(b, rule, ["a red circle"], [3], steps=2)
    assert rule.masks is not None
    assert all(before[k] is v for k, v in b.unet.attn_processors.items())
    with pytest.raises(ValueError, match="boom"):
        with recording(b.unet, "all"):
            assert any(type(p).__name__ == "RecordingProcessor" for p in b.unet.attn_processors.values())
            raise ValueError("boom")
    assert all(before[k] is v for k, v in b.unet.attn_processors.items())


def test_capturing_changes_no_image_and_adds_the_masked_magnitude():
    b = micro_backbone()
    texts, seeds = ["a red circle", "a small green star on black"], [5, 6]
    plain, rule = Guidance(), MaskRecordingCFG(EndTokenCapture(b.tokenizer))
    assert torch.equal(sample(b, rule, texts, seeds), sample(b, plain, texts, seeds))
    stats = rule.batch_stats()
    assert torch.equal(stats["first_step_magnitude"], plain.batch_stats()["first_step_magnitude"])
    assert stats["first_step_masked_magnitude"].shape == (2,)
    assert not torch.equal(stats["first_step_masked_magnitude"], stats["first_step_magnitude"])


def test_end_token_index_follows_each_prompt_length():
    b = micro_backbone()
    tok = b.tokenizer
    texts = ["", "a red circle", "a big blue striped square on white"]
    ids = tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids
    eos, last = end_token_index(tok, texts, "eos"), end_token_index(tok, texts, "last_word")
    assert eos.tolist() == [1, 4, 10] and last.tolist() == [0, 3, 9]
    for row, e, w in zip(ids, eos.tolist(), last.tolist()):
        assert row[e] == tok.eos_token_id and (w == 0 or row[w] != tok.eos_token_id)
    assert tok.convert_ids_to_tokens(ids[2][last[2]]).startswith("white")
    # Truncated prompts: the window ends with the end-of-text token.
    long = [" ".join(["red"] * 50)]
    assert end_token_index(tok, long, "eos").tolist() == [tok.model_max_length - 1]


def test_masked_magnitude_with_a_mask_of_ones_is_the_global_one_bit_for_bit():
    g = torch.Generator().manual_seed(2)
    eps_c, eps_u = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    ones = torch.ones(3, 1, 8, 8)
    assert torch.equal(masked_noise_magnitude(eps_c, eps_u, ones), noise_magnitude(eps_c, eps_u))
    # Scale-free: the magnitude divides by the mask's mean.
    half = torch.zeros(3, 1, 8, 8)
    half[..., :4] = 1.0
    torch.testing.assert_close(masked_noise_magnitude(eps_c, eps_u, 3 * half),
                               masked_noise_magnitude(eps_c, eps_u, half))
    torch.testing.assert_close(masked_noise_magnitude(eps_c, eps_u, half),
                               2 * (eps_c - eps_u)[..., :4].flatten(1).norm(dim=1))
