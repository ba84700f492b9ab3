"""The adaptation family: a method that learns something from the (private) images before sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from benchmark.config import PrivacyConfig, StrategyConfig
from benchmark.utils.checks import check_positive  # noqa: F401  (re-exported for the methods)
from benchmark.data.datasets import BenchmarkDataset
from benchmark.models.backbone import Backbone


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


class AdaptationMethod:
    """An adaptation method (``method=...``): learns an embedding, an adapter or nothing.

    Subclasses override :meth:`adapt`; the base adapts nothing (``method=none``).
    """

    name = "base"
    private = False

    def check(self, privacy: PrivacyConfig) -> None:
        """Refuse settings the method cannot honour (e.g. a finite epsilon for a non-DP method)."""
        if privacy.is_private and not self.private:
            raise ValueError(
                f"method={self.name} is not differentially private but privacy.epsilon={privacy.epsilon}; "
                "use privacy=none (epsilon=inf) or a DP method"
            )

    def adapt(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Adaptation:
        return Adaptation()

    def placeholder_for(self, data: BenchmarkDataset, adaptation: Optional[Adaptation]) -> str:
        """Text put where an evaluation prompt has ``{}``: the learned token, or nothing."""
        return adaptation.placeholder if adaptation else ""
