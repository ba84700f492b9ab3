"""``guidance=pe``: prompt-embedding optimisation against memorization (Wen et al., ICLR 2024).

At the first step, optimise each image's prompt embedding with AdamW to lower its
first-step magnitude ``m_T``, each image stopping once its loss is at or below
``target_loss``; then plain CFG with the optimised embedding for the whole trajectory.
Images stay independent of their batch: the loss is a sum of per-image terms and AdamW is
element-wise. An image whose ``m_T`` is already at or below the target is sampled exactly
as ``guidance=none`` samples it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Union

import torch

from benchmark.config import ConfigError, SamplerConfig
from benchmark.guidance.base import Calibration, SamplingContext
from benchmark.guidance.calibration import ThresholdedGuidance
from benchmark.utils.checks import check_positive
from benchmark.sampling.sampler import Guidance, GuidanceInputs, batched_predictions, cfg_predictions, combine, \
    global_magnitude


class PromptEmbeddingOptimisation(Guidance):
    """The per-step rule: optimise at step 0, then plain CFG with the optimised embeddings."""

    name = "pe"

    def __init__(self, target_loss: float, lr: float, max_iterations: int, magnitude: Callable = global_magnitude):
        # magnitude: the loss per image, (eps_c, eps_u) -> (B,); Bright Ending passes its masked one.
        self.target, self.lr, self.max_iterations, self.magnitude = target_loss, lr, max_iterations, magnitude

    def start(self, items) -> None:
        self.stats, self.cond = {}, None

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        if x.step_index == 0:
            self.cond = self.optimise(unet, x)
        return combine(*cfg_predictions(unet, x.latents, x.timestep, self.cond, x.uncond), x.guidance_scale)

    def optimise(self, unet, x: GuidanceInputs) -> torch.Tensor:
        # Lightning predicts under inference_mode, whose tensors cannot enter autograd: leave it
        # and work on ordinary copies.
        with torch.inference_mode(False):
            return self._optimise(unet, x.latents.clone(), x.timestep.clone(), x.cond.clone(), x.uncond.clone())

    def _optimise(self, unet, latents, timestep, cond, uncond) -> torch.Tensor:
        with torch.no_grad():
            (eps_u,) = batched_predictions(unet, timestep, [(latents, uncond)])
        emb = cond.detach().clone().float().requires_grad_(True)
        opt = torch.optim.AdamW([emb], lr=self.lr)
        frozen = torch.zeros(len(emb), dtype=torch.bool, device=emb.device)
        iterations = torch.zeros(len(emb), dtype=torch.long)
        first = None
        with torch.enable_grad():
            for it in range(self.max_iterations + 1):
                (eps_c,) = batched_predictions(unet, timestep, [(latents, emb.to(cond.dtype))])
                loss = self.magnitude(eps_c, eps_u)
                if first is None:
                    first = loss.detach().cpu()
                frozen |= loss.detach() <= self.target  # an image stops once below the target
                if it == self.max_iterations or bool(frozen.all()):
                    break
                before = emb.detach().clone()
                (grad,) = torch.autograd.grad((loss * (~frozen)).sum(), emb)
                emb.grad = grad
                opt.step()
                opt.zero_grad(set_to_none=True)
                with torch.no_grad():  # frozen rows must not drift with momentum or weight decay
                    emb[frozen] = before[frozen]
                iterations[(~frozen).cpu()] += 1
        self.stats = {"first_step_magnitude": first, "triggered": first > self.target,
                      "optimised_magnitude": loss.detach().cpu(), "pe_iterations": iterations}
        return emb.detach().to(cond.dtype)


@dataclass
class PromptEmbeddingOptimisationMethod(ThresholdedGuidance):
    """``guidance=pe`` (``conf/guidance/pe.yaml``); strength knob ``target_loss`` (lower: stronger)."""

    target_loss: Union[float, str]
    lr: float
    max_iterations: int

    # METHODS.md gives no target for real models: 3.0 is ours, as is the world's quantile.
    AUTO: ClassVar = (("target_loss", 3.0, "q0.95"),)

    def check(self, sampler: SamplerConfig) -> None:
        if isinstance(self.max_iterations, bool) or not isinstance(self.max_iterations, int) \
                or self.max_iterations < 0:
            raise ConfigError(f"guidance.max_iterations must be an integer >= 0, got {self.max_iterations!r}")
        check_positive(self.lr, "guidance.lr")
        super().check(sampler)

    def guidance(self, ctx: SamplingContext, calibration: Calibration) -> Guidance:
        return self.rule(calibration)(global_magnitude)

    def rule(self, calibration: Calibration) -> Callable[[Callable], PromptEmbeddingOptimisation]:
        """The per-step rule for a given loss (magnitude function): ``guidance`` uses the global one."""
        return lambda magnitude: PromptEmbeddingOptimisation(calibration["target_loss"], float(self.lr),
                                                             self.max_iterations, magnitude)
