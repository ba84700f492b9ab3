"""``method=embedding_file``: sample with a learned embedding read from a file.

Evaluates an embedding learned elsewhere (another run's ``learned_embeds.safetensors``, a
released DPAgg-TI row, a perturbed copy of one) with any guidance and the suite's metrics,
without training anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from safetensors.torch import load_file

from benchmark.adapt.base import Adaptation, AdaptationMethod, RunContext
from benchmark.config import ConfigError, PrivacyConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.models.backbone import Backbone


@dataclass(kw_only=True)
class EmbeddingFile(AdaptationMethod):
    """Bind the row in ``path`` to the dataset's placeholder.

    Claims no privacy (``epsilon=inf``): this run cannot know what guarantee, if any, the
    file's embedding carries; that is the run which made it to report.
    """

    name: str
    path: Optional[str]  # required; null in the YAML so that the config composes without it

    def check(self, privacy: PrivacyConfig) -> None:
        super().check(privacy)
        if self.path is None:
            raise ConfigError("method.path is required: method=embedding_file method.path=<file.safetensors>")
        if not Path(self.path).is_file():
            raise ConfigError(f"method.path={self.path!r}: no such file (a safetensors file with one embedding row)")

    def adapt(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Adaptation:
        concept = data.config.concept
        tensors = load_file(self.path)
        if len(tensors) != 1 and concept.placeholder not in tensors:
            raise ConfigError(f"method.path={self.path!r} holds {sorted(tensors)}: expected one row or the key "
                              f"{concept.placeholder!r}")
        row = tensors.get(concept.placeholder, next(iter(tensors.values()))).float().flatten()
        width = backbone.text_encoder.get_input_embeddings().weight.shape[1]
        if row.numel() != width:
            raise ConfigError(f"method.path={self.path!r}: a row of {row.numel()} values, the text encoder's "
                              f"embeddings have {width}")
        backbone.add_placeholder_tokens([concept.placeholder], concept.initializer_token)
        return Adaptation(placeholder=concept.placeholder, embeddings={concept.placeholder: row},
                          metrics={"adapt/embedding_norm": float(row.norm())})
