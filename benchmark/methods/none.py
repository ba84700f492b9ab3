"""``method=none``: the base model, no adaptation, plain classifier-free guidance."""

from benchmark.methods.base import Method


class BaseModel(Method):
    """Sample the pretrained backbone as it is: the reference every method is compared to."""

    name = "none"
