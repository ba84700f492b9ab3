"""``method=none``: the base model, no adaptation, plain classifier-free guidance."""

from dataclasses import dataclass

from benchmark.methods.base import Method


@dataclass
class BaseModel(Method):
    """Sample the pretrained backbone as it is: the reference every method is compared to."""

    name: str = "none"
