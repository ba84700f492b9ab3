"""``guidance=none``: plain classifier-free guidance, the reference every mitigation is compared to."""

from dataclasses import dataclass

from benchmark.guidance.base import Calibration, GuidanceMethod, SamplingContext
from benchmark.sampling.attention import EndTokenCapture, MaskRecordingCFG
from benchmark.sampling.sampler import Guidance


@dataclass
class PlainCFG(GuidanceMethod):
    """``eps(∅) + s (eps(c) - eps(∅))`` at every step (∅: the sampler's negative prompt).

    Where the UNet has down-block cross-attention, the rule also captures Bright Ending
    masks at the final step (official settings: end-of-text token, latent-resolution
    layers), so detection reports the masked first-step magnitude beside the global one at
    no extra UNet call; the images are the same bits either way.
    """

    def guidance(self, ctx: SamplingContext, calibration: Calibration) -> Guidance:
        capture = EndTokenCapture(ctx.backbone.tokenizer)
        return MaskRecordingCFG(capture) if capture.supports(ctx.backbone.unet) else Guidance()
