"""``guidance=none``: plain classifier-free guidance, the reference every mitigation is compared to."""

from dataclasses import dataclass

from benchmark.guidance.base import Calibration, GuidanceMethod, SamplingContext
from benchmark.sampling.sampler import Guidance


@dataclass
class PlainCFG(GuidanceMethod):
    """``eps(∅) + s (eps(c) - eps(∅))`` at every step (∅: the sampler's negative prompt)."""

    def guidance(self, ctx: SamplingContext, calibration: Calibration) -> Guidance:
        return Guidance()
