"""What every method provides: an adaptation step and a guidance rule for sampling."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from benchmark.config import ConfigError, PrivacyConfig, StrategyConfig
from benchmark.data.datasets import BenchmarkDataset
from benchmark.models.backbone import Backbone
from benchmark.sampling.sampler import Guidance


def check_positive(value, key: str, integer: bool = False, why: str = ""):
    """A method hyperparameter that must be finite and > 0 (an integer when ``integer``).

    Raises ``ConfigError`` naming ``key`` (``why`` is appended to the message); returns
    the value as an int or float.
    """
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not (0 < value < math.inf):
        raise ConfigError(f"{key} must be a {'positive integer' if integer else 'finite number > 0'}{why}, "
                          f"got {value!r}")
    return int(value) if integer else float(value)


@dataclass
class RunContext:
    """What a method may use besides the backbone and the data."""

    output_dir: Path
    seed: int
    privacy: PrivacyConfig
    strategy: StrategyConfig
    make_trainer: Callable[..., object]  # builds a configured Lightning Trainer


@dataclass
class Adaptation:
    """The outcome of ``Method.adapt``: what sampling uses and what the run reports.

    ``embeddings`` maps placeholder tokens to learned rows; they are bound into the
    text encoder before sampling. ``privacy`` is the (epsilon, delta) this release spent.
    """

    placeholder: str = ""
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    privacy: dict = field(default_factory=lambda: {"epsilon": float("inf"), "delta": 0.0, "private": False})
    metrics: dict = field(default_factory=dict)
    released_files: list[Path] = field(default_factory=list)


class Method:
    """A benchmarked method. Subclasses override ``adapt`` and/or ``guidance``."""

    name = "base"
    private = False

    def check(self, privacy: PrivacyConfig) -> None:
        """Refuse settings the method cannot honour (e.g. a finite epsilon for a non-DP method)."""
        if privacy.is_private and not self.private:
            raise ValueError(
                f"method={self.name} is not differentially private but privacy.epsilon={privacy.epsilon}; "
                "use privacy=none (epsilon=inf) or a DP method"
            )

    def check_sampler(self, sampler) -> None:
        """Refuse sampler settings the method's guidance cannot work with (e.g. PRSS needs s > 1)."""

    def adapt(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Adaptation:
        return Adaptation()

    def guidance(self) -> Guidance:
        return Guidance()

    def placeholder_for(self, data: BenchmarkDataset, adaptation: Optional[Adaptation]) -> str:
        """Text put where an evaluation prompt has ``{}``: the learned token, or nothing."""
        return adaptation.placeholder if adaptation else ""
