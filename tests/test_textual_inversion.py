"""Textual inversion trains its placeholder rows and nothing else."""

import pytest
import torch
from torch import nn

from benchmark.config import ModelConfig, default_config
from benchmark.adapt.textual_inversion import PlaceholderEmbedding, TextualInversion
from benchmark.models.backbone import load_backbone


def test_placeholder_embedding_reads_rows_only_at_placeholder_ids():
    base = nn.Embedding(10, 4)
    rows = torch.randn(2, 4)
    emb = PlaceholderEmbedding(base, [8, 9], rows)
    ids = torch.tensor([[1, 8, 2, 9]])
    out = emb(ids)
    torch.testing.assert_close(out[0, 0], base.weight[1])
    torch.testing.assert_close(out[0, 1], rows[0])
    torch.testing.assert_close(out[0, 3], rows[1])
    base.weight.requires_grad_(False)
    emb(torch.tensor([[1, 8, 8]])).sum().backward()
    assert emb.rows.grad[0].abs().sum() > 0 and emb.rows.grad[1].abs().sum() == 0


def test_ti_changes_only_the_placeholder_row(tmp_path, micro_world):
    from benchmark.config import validate_config
    from benchmark.data.datasets import load_dataset
    from benchmark.lightning.factories import make_trainer_factory
    from benchmark.adapt.base import RunContext
    from tests.conftest import SMOKE, compose

    bb = load_backbone(default_config(ModelConfig, "model=micro"))
    before = bb.text_encoder.get_input_embeddings().weight.detach().clone()
    unet_before = {k: v.clone() for k, v in bb.unet.state_dict().items()}
    run = validate_config(compose(SMOKE))
    data = load_dataset(run.dataset, 32)
    ctx = RunContext(tmp_path, 0, run.privacy, run.strategy, make_trainer_factory(run.strategy, None, tmp_path))
    result = TextualInversion(max_steps=4, batch_size=4, learning_rate=0.05).adapt(bb, data, ctx)
    after = bb.text_encoder.get_input_embeddings().weight.detach()
    placeholder_id = bb.tokenizer.convert_tokens_to_ids("<S*>")
    assert after.shape[0] == before.shape[0] + 1
    torch.testing.assert_close(after[: before.shape[0]], before)  # every old row untouched
    learned = result.embeddings["<S*>"]
    init = before[bb.tokenizer.convert_tokens_to_ids("painting")]
    assert not torch.allclose(learned, init), "the placeholder row did not train"
    assert isinstance(bb.text_encoder.get_input_embeddings(), nn.Embedding)  # wrapper removed
    for k, v in bb.unet.state_dict().items():
        assert torch.equal(v, unet_before[k]), k
    assert placeholder_id == before.shape[0]


def test_initializer_must_be_one_token(micro_world):
    bb = load_backbone(default_config(ModelConfig, "model=micro"))
    with pytest.raises(ValueError, match="single token"):
        bb.add_placeholder_tokens(["<x>"], "quiet harbor")
