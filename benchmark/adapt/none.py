"""``method=none``: the base model, no adaptation, plain classifier-free guidance."""

from dataclasses import dataclass

from benchmark.adapt.base import AdaptationMethod


@dataclass(kw_only=True)
class BaseModel(AdaptationMethod):
    """Sample the pretrained backbone as it is: the reference every method is compared to.

    Releases nothing learned from the private images: ``privacy`` is ``epsilon=inf``
    only because it claims no guarantee, not because it spends any.
    """

    name: str
