"""``method=dpsgd_ti`` (the paper's main baseline): one placeholder row trained with DP-SGD.

The row is its own small parameter (:class:`~benchmark.adapt.textual_inversion.PlaceholderRows`):
Opacus' ``nn.Embedding`` per-sample gradient would be a dense ``B x V x D`` tensor.
Released: the row (``learned_embeds.safetensors``), covered by ``privacy`` (or, at
``privacy.epsilon=inf``, non-private like ``method=ti``).
"""

from __future__ import annotations

from dataclasses import dataclass


from benchmark.adapt.base import Adaptation, RunContext, write_artifact
from benchmark.adapt.dpsgd.base import DPSGDBase
from benchmark.adapt.textual_inversion import PlaceholderEmbedding
from benchmark.data.types import BenchmarkDataset
from benchmark.models.backbone import Backbone


@dataclass(kw_only=True)
class DPSGDTextualInversion(DPSGDBase):
    """``method=dpsgd_ti``: one placeholder row trained on the whole adaptation split with DP-SGD."""

    def prepare(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> None:
        concept = data.config.concept
        ids, init = backbone.add_placeholder_tokens([concept.placeholder], concept.initializer_token)
        self.embedding = PlaceholderEmbedding(backbone.text_encoder.get_input_embeddings(), ids, init.unsqueeze(0))
        backbone.text_encoder.set_input_embeddings(self.embedding)

    def adapt(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Adaptation:
        module, report = self.train(backbone, data, ctx)
        concept = data.config.concept
        learned = self.embedding.learned.rows.detach()[0].cpu().clone()
        backbone.text_encoder.set_input_embeddings(self.embedding.base)  # a plain table; run.py binds the row
        privacy = self.privacy_of(module, report)
        path = ctx.output_dir / "learned_embeds.safetensors"
        write_artifact({concept.placeholder: learned}, path)  # DP release (or non-private like ti)
        return Adaptation(
            placeholder=concept.placeholder, embeddings={concept.placeholder: learned}, privacy=privacy,
            # Functions of the release and public settings only (no loss: it is computed without DP).
            metrics={**self.training_metrics(module), "adapt/embedding_norm": float(learned.norm())},
        )
