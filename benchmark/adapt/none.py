"""``method=none``: the base model, no adaptation, plain classifier-free guidance."""

from dataclasses import dataclass

from benchmark.adapt.base import AdaptationMethod


@dataclass
class BaseModel(AdaptationMethod):
    """Sample the pretrained backbone as it is: the reference every method is compared to."""

    name: str = "none"
