"""``guidance=pe_be`` and ``guidance=prss_be``: Bright Ending (BE) masked mitigation.

Chen et al., "Exploring Local Memorization in Diffusion Models via Bright Ending
Attention" (ICLR 2025; official code chenchen-usyd/BE-PRSS). Each batch takes two passes
(:class:`BrightEndingGuidance`; the mask itself: :mod:`benchmark.sampling.attention`):

1. **First pass**: plain CFG, bit for bit what ``guidance=none`` computes, that captures
   each image's BE mask at the final step and keeps its first-step predictions; so the
   masked magnitude ``m_T^BE = ||mask * (eps(x_T, c) - eps(x_T, ∅))|| / mean(mask)`` costs
   no extra UNet call.
2. **Mitigation pass**: an image whose ``m_T^BE`` exceeds the base method's trigger
   threshold (PE: ``target_loss``; PRSS: ``lambda_ss``) is sampled again from its own
   ``x_T`` by the base method's own rule, with the masked magnitude in place of the global
   one: PE's loss ("baseline + BE"), PRSS's first-step magnitude of the original and of
   every candidate ("PRSS + BE"; PR's per-step magnitude stays global, as in the official
   code). Every other image keeps its first pass, which is exactly what PE and PRSS
   produce for an image they leave alone.

Cost: an untriggered image costs one sampling, as under the base method; a triggered one
costs the base method's sampling plus one plain-CFG sampling (the first pass), never more.
With a mask of ones ``m_T^BE`` equals ``m_T`` bit for bit, and so do the images and
statistics of a batch whose images all trigger or all do not (the tests check this; in a
mixed batch the re-sampled rows form a smaller UNet batch, whose float results may differ
in the last bits).

Thresholds given as quantiles are taken over the masked first-step magnitudes of
non-memorized prompts (``lambda_ss``, ``target_loss``); PRSS's every-step thresholds
(``lambda_pr``, ``tau``) stay quantiles of the global magnitudes, which PR compares them with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from benchmark.config import ConfigError, SamplerConfig
from benchmark.guidance.base import Calibration, SamplingContext
from benchmark.guidance.pe import PromptEmbeddingOptimisationMethod
from benchmark.guidance.prss import PRSS
from benchmark.models.backbone import Backbone
from benchmark.sampling.attention import (END_TOKENS, LAYER_SETS, EndTokenCapture, MaskedMagnitude, MaskRecordingCFG,
                                          cross_attention_modules)
from benchmark.sampling.plan import SampleItem
from benchmark.sampling.sampler import Guidance, GuidanceInputs

# Per-image statistics of the base rules, with their types, so every batch reports the same keys
# (a run keeps only the keys every batch reported): an untriggered image gets 0 / False, or its
# masked first-step magnitude for a magnitude (what the base rule reports for an image it leaves alone).
PE_STATS = {"triggered": torch.bool, "optimised_magnitude": torch.float32, "pe_iterations": torch.long}
PRSS_STATS = {"triggered": torch.bool, "chosen_candidate": torch.long, "chosen_magnitude": torch.float32,
              "reanchored_steps": torch.long}


class BrightEndingGuidance(Guidance):
    """The two-pass rule: plain CFG capturing BE masks, then the base rule, masked, on triggered images."""

    def __init__(self, name: str, capture: EndTokenCapture, threshold: float,
                 mitigation: Callable[[MaskedMagnitude], Guidance], stat_types: dict[str, torch.dtype]):
        self.name, self.capture, self.threshold = name, capture, float(threshold)
        self.mitigation, self.stat_types = mitigation, stat_types

    def start(self, items: Sequence[SampleItem]) -> None:
        self.items = list(items)
        self.first = MaskRecordingCFG(self.capture)
        self.first.start(self.items)
        self.inner, self.rows = None, torch.zeros(0, dtype=torch.long)

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        return (self.inner or self.first).noise_prediction(unet, x)

    def rows_to_resample(self) -> list[int]:
        if self.inner is not None:  # the mitigation pass is over: never a third pass
            return []
        masked = self.first.batch_stats()["first_step_masked_magnitude"]
        rows = (masked > self.threshold).nonzero().flatten()
        if len(rows) == 0:
            return []
        self.rows = rows
        masks = self.first.masks[rows.to(self.first.masks.device)]
        self.inner = self.mitigation(MaskedMagnitude(masks))
        self.inner.start([self.items[r] for r in rows.tolist()])
        return rows.tolist()

    def batch_stats(self) -> dict[str, torch.Tensor]:
        """The first pass's ``first_step_magnitude`` (global) and ``first_step_masked_magnitude``,
        and the base rule's statistics, its values for re-sampled images scattered into place."""
        out = self.first.batch_stats()
        masked = out["first_step_masked_magnitude"]
        inner = self.inner.batch_stats() if self.inner is not None else {}
        for key, dtype in self.stat_types.items():
            full = masked.to(dtype, copy=True) if dtype.is_floating_point else torch.zeros(len(masked), dtype=dtype)
            if key in inner:
                full[self.rows] = inner[key].to(dtype)
            out[key] = full
        return out


def check_options(method) -> None:
    """``guidance.end_token`` and ``guidance.attention_layers`` (ConfigError naming the key)."""
    if method.end_token not in END_TOKENS:
        raise ConfigError(f"guidance.end_token must be one of {', '.join(END_TOKENS)}; got {method.end_token!r}")
    if method.attention_layers not in LAYER_SETS:
        raise ConfigError(f"guidance.attention_layers must be one of {', '.join(LAYER_SETS)}; "
                          f"got {method.attention_layers!r}")


def check_unet(method, backbone: Backbone) -> None:
    """Refuse a UNet with no down-block cross-attention processor to record (before any sampling)."""
    if not cross_attention_modules(backbone.unet, method.attention_layers):
        raise ConfigError(
            f"guidance={method.name} (Bright Ending) records the end token's cross-attention in the UNet's down "
            f"blocks (guidance.attention_layers={method.attention_layers}), but the UNet of model "
            f"{backbone.name!r} ({type(backbone.unet).__name__}) has no cross-attention processor there")


@dataclass
class BrightEndingOptions:
    """The fields and checks ``pe_be`` and ``prss_be`` add to PE and PRSS (listed first among the bases)."""

    end_token: str  # eos (official) | last_word
    attention_layers: str  # latent (official) | all

    def check(self, sampler: SamplerConfig) -> None:
        check_options(self)
        super().check(sampler)

    def check_backbone(self, backbone: Backbone) -> None:
        check_unet(self, backbone)

    def capture(self, backbone: Backbone) -> EndTokenCapture:
        check_unet(self, backbone)
        return EndTokenCapture(backbone.tokenizer, self.end_token, self.attention_layers)


@dataclass
class PromptEmbeddingOptimisationBE(BrightEndingOptions, PromptEmbeddingOptimisationMethod):
    """``guidance=pe_be`` (``conf/guidance/pe_be.yaml``): PE whose loss is the BE-masked magnitude."""

    def guidance(self, ctx: SamplingContext, calibration: Calibration) -> Guidance:
        return BrightEndingGuidance(self.name, self.capture(ctx.backbone), calibration["target_loss"],
                                    self.rule(calibration), PE_STATS)


@dataclass
class PRSSBE(BrightEndingOptions, PRSS):
    """``guidance=prss_be`` (``conf/guidance/prss_be.yaml``): PRSS's SS thresholds on the BE-masked magnitude."""

    def guidance(self, ctx: SamplingContext, calibration: Calibration) -> Guidance:
        # PRSS triggers only when SS or PR is on; with both off it samples plain CFG throughout.
        threshold = calibration["lambda_ss"] if (self.semantic_search or self.prompt_reanchoring) else float("inf")
        return BrightEndingGuidance(self.name, self.capture(ctx.backbone), threshold, self.rule(ctx, calibration),
                                    PRSS_STATS)
