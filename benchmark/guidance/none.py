"""``guidance=none``: plain classifier-free guidance, the reference every mitigation is compared to."""

from dataclasses import dataclass

from benchmark.guidance.calibration import GuidanceMethod


@dataclass
class PlainCFG(GuidanceMethod):
    """``eps(empty) + s (eps(c) - eps(empty))`` at every step."""

    name: str = "none"
