"""``method=dpsgd_lora`` and its non-private twin ``method=lora``: peft LoRA adapters on the UNet.

The DP-LDM recipe: fine-tune only the attention projections. The adapted UNet stays in
the backbone for sampling; the adapter is written out (``lora_weights.safetensors``)
only when trained with DP, so a non-private adapter never leaves memory (DESIGN.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from benchmark.adapt.base import Adaptation, RunContext, check_positive, write_artifact
from benchmark.adapt.dpsgd.base import DPSGDBase
from benchmark.config import ConfigError, PrivacyConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.models.backbone import Backbone

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass(kw_only=True)
class DPSGDLoRA(DPSGDBase):
    """``method=dpsgd_lora``: peft LoRA adapters on the UNet's attention projections, DP-SGD."""

    rank: int
    alpha: Optional[float]  # None: alpha = rank (scaling 1)
    lora_targets: list[str]

    def check(self, privacy: PrivacyConfig) -> None:
        super().check(privacy)
        check_positive(self.rank, "method.rank", integer=True)
        if self.alpha is not None:
            check_positive(self.alpha, "method.alpha")
        if not self.lora_targets:
            raise ConfigError("method.lora_targets must name at least one module (e.g. to_q, to_k, to_v, to_out.0)")

    def placeholder_token(self, data: BenchmarkDataset) -> str:
        # LoRA learns no token: training prompts are the templates with "{}" filled by the
        # concept's initializer word, so the prompt still names the concept.
        return data.config.concept.initializer_token

    def placeholder_for(self, data: BenchmarkDataset, adaptation: Optional[Adaptation]) -> str:
        return data.config.concept.initializer_token

    def prepare(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> None:
        from peft import LoraConfig

        names = {name.rsplit(".", 1)[-1] for name, _ in backbone.unet.named_modules()}
        full = {name for name, _ in backbone.unet.named_modules()}
        missing = [t for t in self.lora_targets if t not in names and not any(n.endswith("." + t) for n in full)]
        if missing:
            raise ConfigError(f"method.lora_targets {missing} match no module of the UNet; attention projections "
                              f"are named {list(LORA_TARGETS)}")
        config = LoraConfig(r=int(self.rank), lora_alpha=float(self.alpha if self.alpha is not None else self.rank),
                            target_modules=list(self.lora_targets), lora_dropout=0.0, init_lora_weights="gaussian")
        backbone.unet.add_adapter(config)  # diffusers' PEFT integration: adapters trainable, base frozen
        for name, p in backbone.unet.named_parameters():
            p.requires_grad_("lora_" in name)

    def lora_state(self, backbone: Backbone) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in backbone.unet.state_dict().items() if "lora_" in k}

    def adapt(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Adaptation:
        module, report = self.train(backbone, data, ctx)
        for p in backbone.unet.parameters():
            p.requires_grad_(False)
        privacy = self.privacy_of(module, report)
        state = self.lora_state(backbone)
        if privacy["private"]:
            # Only a DP-trained adapter is released; a non-private one stays in memory (DESIGN.md).
            path = ctx.output_dir / "lora_weights.safetensors"
            write_artifact(state, path)
        lora_norm = math.sqrt(sum(float(v.float().pow(2).sum()) for v in state.values()))
        # The adapted UNet stays in the backbone: sampling uses it.
        return Adaptation(
            placeholder="", privacy=privacy,
            metrics={**self.training_metrics(module), "adapt/lora_parameters": sum(v.numel() for v in state.values()),
                     "adapt/lora_norm": lora_norm},
        )


@dataclass(kw_only=True)
class LoRA(DPSGDLoRA):
    """``method=lora``: the non-private twin of ``dpsgd_lora`` (same module, no clipping, no noise)."""

    private = False
