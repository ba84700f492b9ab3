"""Bright Ending (BE) attention capture: the end token's cross-attention at the final step.

Chen et al. (ICLR 2025; official code chenchen-usyd/BE-PRSS): in a memorized generation
the cross-attention of the prompt's end token at the last denoising step lights up the
memorized region. The BE mask of an image is that attention, from the UNet's down-block
cross-attention layers, averaged over layers and heads, at the latent resolution.

Capture works through diffusers' attention processors, with no fork of the UNet:
:func:`recording` puts a :class:`RecordingProcessor` on each selected cross-attention
module (``Attention.set_processor``) for one block of code and puts the original
processors back afterwards, also when the block raises. A recording processor returns
exactly what the original processor returns (it calls it), so capturing never changes an
image; it only computes ``softmax(Q K^T / sqrt(d))`` a second time for the record.

Choices (official code, unless marked):
- token ``eos``: the official index ``len(tokenizer.encode(prompt)) - 1``, i.e. the first
  end-of-text token after the prompt; ``last_word`` **[ours]**: the last real prompt token
  (the one before it). Both come from the tokenizer's attention mask, per prompt.
- layers ``latent``: the cross-attention layers of the first down block, the only ones
  at the latent resolution (the official code keeps the 64x64 layers of SD at 512 px);
  ``all`` **[ours]**: every down-block cross-attention layer, each map upsampled
  bilinearly to the latent size before averaging.
- no normalisation of the mask itself: the masked magnitude divides by the mask's mean
  (:func:`masked_noise_magnitude`), so a mask's scale cancels and a mask of ones gives the
  global magnitude exactly.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F

from benchmark.sampling.sampler import Guidance, GuidanceInputs, cfg_predictions, combine, noise_magnitude

END_TOKENS = ("eos", "last_word")
LAYER_SETS = ("latent", "all")


def end_token_index(tokenizer, texts: Sequence[str], which: str = "eos") -> torch.Tensor:
    """Per prompt, the position of its end token in the padded, truncated token window.

    ``eos``: the first end-of-text token (BOS + prompt tokens + EOS counted by the attention
    mask, minus one); ``last_word``: the position before it (BOS for an empty prompt).
    """
    if which not in END_TOKENS:
        raise ValueError(f"end token {which!r}: choose one of {END_TOKENS}")
    enc = tokenizer(list(texts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt")
    length = enc.attention_mask.sum(dim=1).long()
    return (length - 1) if which == "eos" else (length - 2).clamp(min=0)


def cross_attention_modules(unet, layers: str = "latent") -> dict[str, torch.nn.Module]:
    """The down blocks' cross-attention modules BE reads (``name -> Attention``), in forward order.

    ``latent``: those of the first down block (it runs at the latent resolution);
    ``all``: those of every down block. Empty when the UNet has none (no capture possible).
    """
    if layers not in LAYER_SETS:
        raise ValueError(f"attention layers {layers!r}: choose one of {LAYER_SETS}")
    blocks = getattr(unet, "down_blocks", None)
    if blocks is None or not hasattr(unet, "attn_processors"):
        return {}
    chosen = blocks[:1] if layers == "latent" else blocks
    out = {}
    for i, block in enumerate(chosen):
        for name, module in block.named_modules():
            # diffusers' Attention: is_cross_attention is set when it attends to encoder states.
            if getattr(module, "is_cross_attention", False) and hasattr(module, "set_processor"):
                out[f"down_blocks.{i}.{name}"] = module
    return out


def attention_probabilities(attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                            attention_mask: Optional[torch.Tensor] = None,
                            temb: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``softmax(Q K^T / sqrt(d))`` of one cross-attention call, averaged over heads: (B, N, L).

    The same preprocessing as diffusers' ``AttnProcessor`` (spatial norm, group norm, cross
    norm, head split, optional q/k norms), so the probabilities are the ones the layer uses.
    """
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    if hidden_states.ndim == 4:
        b, c, h, w = hidden_states.shape
        hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
    batch = encoder_hidden_states.shape[0]
    attention_mask = attn.prepare_attention_mask(attention_mask, encoder_hidden_states.shape[1], batch)
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    query = attn.head_to_batch_dim(attn.to_q(hidden_states))
    if attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
    if getattr(attn, "norm_q", None) is not None:  # q/k norms act on the last (head) dimension
        query = attn.norm_q(query)
    if getattr(attn, "norm_k", None) is not None:
        key = attn.norm_k(key)
    probs = attn.get_attention_scores(query, key, attention_mask)  # (B * heads, N, L)
    return probs.view(batch, attn.heads, *probs.shape[1:]).float().mean(dim=1)


class RecordingProcessor:
    """Wraps a module's processor: same output, plus the head-averaged cross-attention probabilities."""

    def __init__(self, original, name: str, store: dict[str, list[torch.Tensor]]):
        self.original, self.name, self.store = original, name, store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        if encoder_hidden_states is not None:
            self.store.setdefault(self.name, []).append(
                attention_probabilities(attn, hidden_states, encoder_hidden_states, attention_mask, temb))
        return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)


class AttentionRecord:
    """What one :func:`recording` block saw: per layer, the maps of every UNet call in the block."""

    def __init__(self):
        self.maps: dict[str, list[torch.Tensor]] = {}

    def mask(self, rows: torch.Tensor, token_index: torch.Tensor, latent_hw: tuple[int, int],
             call: int = 0) -> torch.Tensor:
        """The BE mask (len(rows), 1, H, W) of ``rows`` of UNet call ``call``: the end token's
        attention per layer, each upsampled to the latent size, averaged over layers."""
        if not self.maps:
            raise RuntimeError("no cross-attention was recorded: the UNet has no selected cross-attention layers")
        height, width = latent_hw
        token_index = token_index.to(rows.device)
        per_layer = []
        for maps in self.maps.values():
            probs = maps[call][rows.to(maps[call].device)]  # (R, N, L)
            picked = probs[torch.arange(len(rows), device=probs.device), :, token_index.to(probs.device)]  # (R, N)
            factor = round((height * width / picked.shape[1]) ** 0.5)
            h, w = height // factor, width // factor
            if h * w != picked.shape[1]:
                raise RuntimeError(f"a cross-attention map of {picked.shape[1]} positions does not tile the "
                                   f"{height}x{width} latent")
            layer = picked.view(len(rows), 1, h, w)
            if (h, w) != (height, width):
                layer = F.interpolate(layer, size=(height, width), mode="bilinear", align_corners=False)
            per_layer.append(layer)
        return torch.stack(per_layer).mean(dim=0)


@contextmanager
def recording(unet, layers: str = "latent") -> Iterator[AttentionRecord]:
    """Record the selected cross-attention layers of ``unet`` inside the block; originals restored after."""
    modules = cross_attention_modules(unet, layers)
    if not modules:
        raise RuntimeError(f"{type(unet).__name__} has no down-block cross-attention processors to record")
    record = AttentionRecord()
    originals = {name: module.processor for name, module in modules.items()}
    try:
        for name, module in modules.items():
            module.set_processor(RecordingProcessor(originals[name], name, record.maps))
        yield record
    finally:
        for name, module in modules.items():
            module.set_processor(originals[name])


def masked_noise_magnitude(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BE's masked magnitude ``||mask * (eps(c) - eps(∅))||_2 / mean(mask)`` per sample (official code).

    ``mask`` is (B, 1, H, W), broadcast over the latent channels. A mask of ones gives
    :func:`~benchmark.sampling.sampler.noise_magnitude` bit for bit (times 1, divided by 1).
    """
    dtype = torch.promote_types(eps_cond.dtype, torch.float32)
    mask = mask.to(device=eps_cond.device, dtype=dtype)
    diff = eps_cond.to(dtype) - eps_uncond.to(dtype)
    return (mask * diff).flatten(1).norm(dim=1) / mask.flatten(1).mean(dim=1)


class MaskedMagnitude:
    """A magnitude function with per-row BE masks: ``(eps_c, eps_u, rows=None) -> (B,)``.

    ``rows`` says which batch row each prediction belongs to (PRSS scores several candidates
    of one image against that image's mask); ``None``: row i is image i.
    """

    def __init__(self, masks: torch.Tensor):
        self.masks = masks

    def __call__(self, eps_cond: torch.Tensor, eps_uncond: torch.Tensor,
                 rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        masks = self.masks if rows is None else self.masks[rows.to(self.masks.device)]
        if masks.is_inference() and not torch.is_inference_mode_enabled():
            # Lightning samples under inference_mode; PE differentiates outside it, and an inference
            # tensor cannot be saved for backward: an ordinary copy can.
            masks = masks.clone()
        return masked_noise_magnitude(eps_cond, eps_uncond, masks)


class EndTokenCapture:
    """What a rule needs to capture BE masks: the tokenizer (end-token positions) and the layer set."""

    def __init__(self, tokenizer, end_token: str = "eos", layers: str = "latent"):
        if end_token not in END_TOKENS:
            raise ValueError(f"end token {end_token!r}: choose one of {END_TOKENS}")
        if layers not in LAYER_SETS:
            raise ValueError(f"attention layers {layers!r}: choose one of {LAYER_SETS}")
        self.tokenizer, self.end_token, self.layers = tokenizer, end_token, layers

    def supports(self, unet) -> bool:
        return bool(cross_attention_modules(unet, self.layers))

    def token_index(self, texts: Sequence[str]) -> torch.Tensor:
        return end_token_index(self.tokenizer, texts, self.end_token)


class MaskRecordingCFG(Guidance):
    """Plain CFG, bit for bit the ``none`` computation, that also keeps each image's BE mask.

    It keeps the first step's ``eps(c)`` and ``eps(∅)`` of every image and records the
    end token's attention during the final step's CFG call (conditional rows), so after a
    pass ``masks`` holds the BE masks and ``batch_stats()`` adds the masked first-step
    magnitude ``first_step_masked_magnitude`` to ``first_step_magnitude``: no extra UNet call.
    """

    name = "none"

    def __init__(self, capture: Optional[EndTokenCapture]):
        self.capture = capture

    def start(self, items) -> None:
        self.stats, self.masks, self._first = {}, None, None
        self.token_index = self.capture.token_index([it.text for it in items]) if self.capture else None

    def observe(self, x: GuidanceInputs, eps_u: torch.Tensor, eps_c: torch.Tensor) -> None:
        """Called with every step's predictions (calibration records magnitudes here)."""

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        final = self.capture is not None and x.num_steps > 0 and x.step_index == x.num_steps - 1
        with (recording(unet, self.capture.layers) if final else nullcontext()) as record:
            eps_u, eps_c = cfg_predictions(unet, x.latents, x.timestep, x.cond, x.uncond)
        self.observe(x, eps_u, eps_c)
        if x.step_index == 0:
            self.stats = {"first_step_magnitude": noise_magnitude(eps_c, eps_u).cpu()}
            self._first = (eps_c, eps_u)
        if final:
            b = len(x.latents)
            rows = torch.arange(b, 2 * b)  # cfg_predictions puts the conditional rows second
            self.masks = record.mask(rows, self.token_index, tuple(x.latents.shape[-2:]))
            self.stats["first_step_masked_magnitude"] = masked_noise_magnitude(*self._first, self.masks).cpu()
            self._first = None  # the predictions are no longer needed
        return combine(eps_u, eps_c, x.guidance_scale)
