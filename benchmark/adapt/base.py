"""The adaptation family: a method that learns something from the (private) images before sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Optional

import torch
from safetensors.torch import save

from benchmark.config import PrivacyConfig, StrategyConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.lightning.distributed import rank
from benchmark.models.backbone import Backbone
from benchmark.utils.checks import check_positive  # noqa: F401  (re-exported for the methods)
from benchmark.utils.io import atomic_write_bytes


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
    """The outcome of ``AdaptationMethod.adapt``: what sampling uses and what the run reports.

    ``embeddings`` maps placeholder tokens to learned rows; they are bound into the text
    encoder before sampling (an adapter such as LoRA stays in the backbone instead).
    ``privacy`` is what the whole release spent: ``epsilon``, ``delta``, ``private`` and
    the mechanism's parameters, logged as ``privacy/*``. ``metrics`` are logged as
    ``adapt/*`` and may hold only public settings and functions of the release.
    """

    placeholder: str = ""
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    privacy: dict = field(default_factory=lambda: {"epsilon": float("inf"), "delta": 0.0, "private": False})
    metrics: dict = field(default_factory=dict)


class AdaptationMethod:
    """An adaptation method (``method=...``): learns an embedding, an adapter or nothing.

    A method is a dataclass instantiated from its YAML (``conf/method/<name>.yaml``, the
    one place its defaults live); ``name`` is its config name. Subclasses override
    :meth:`adapt`; the base adapts nothing (``method=none``).

    Guarantees every method gives, in the way Opacus states its own:

    * :meth:`check` runs before anything is loaded and raises ``ValueError`` (a
      ``ConfigError``) naming the key for any setting the method cannot honour; a
      non-private method refuses a finite ``privacy.epsilon``.
    * :meth:`adapt` returns an :class:`Adaptation` whose ``privacy`` covers **everything
      released**: the embeddings it returns, the backbone as it leaves it (an adapter
      trained in place), every file it writes to ``ctx.output_dir`` and everything sampled
      from them. For a private method (``privacy["private"]``) the whole release is
      ``(epsilon, delta)``-DP with respect to one image of ``data.adapt`` for the
      neighbouring relation it reports; otherwise ``epsilon`` is ``inf`` and ``delta`` 0.
    * Nothing computed from the private images without DP is returned in
      ``Adaptation.metrics``, logged, or written to the run directory: a DP method
      reports only public settings and functions of its release (no training loss).
      A non-private method may report its training loss: it claims no privacy.
    """

    name: str
    private: ClassVar[bool] = False

    def check(self, privacy: PrivacyConfig) -> None:
        """Refuse settings the method cannot honour (e.g. a finite epsilon for a non-DP method)."""
        if privacy.is_private and not self.private:
            raise ValueError(
                f"method={self.name} is not differentially private but privacy.epsilon={privacy.epsilon}; "
                "use privacy=none (epsilon=inf) or a DP method"
            )

    @property
    def learns(self) -> bool:
        """Whether :meth:`adapt` learns anything (the run's ``adapt`` stage does work)."""
        return type(self).adapt is not AdaptationMethod.adapt

    def adapt(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Adaptation:
        """Learn from ``data.adapt`` (modifying ``backbone`` only as documented by the method)."""
        return Adaptation()

    def placeholder_for(self, data: BenchmarkDataset, adaptation: Optional[Adaptation]) -> str:
        """Text put where an evaluation prompt has ``{}``: the learned token, or nothing."""
        return adaptation.placeholder if adaptation else ""


def write_artifact(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write a released artifact (safetensors) atomically, on rank 0 only.

    Under data parallelism every rank holds the same release; one file, written whole
    or not at all, is what the run directory must show.
    """
    if rank() == 0:
        atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
