"""Textual inversion trains its placeholder rows and nothing else."""

import pytest
import torch
from torch import nn

from benchmark.adapt.textual_inversion import PlaceholderEmbedding
from benchmark.datasets import load_dataset
from benchmark.models.backbone import load_backbone
from tests.adapt._helpers import context, method_from_yaml, run_config


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
    run = run_config()
    bb = load_backbone(run.model)
    before = bb.text_encoder.get_input_embeddings().weight.detach().clone()
    unet_before = {k: v.clone() for k, v in bb.unet.state_dict().items()}
    data = load_dataset(run.dataset, 32)
    ti = method_from_yaml("ti", max_steps=4, batch_size=4, learning_rate=0.05)
    result = ti.adapt(bb, data, context(run, tmp_path, seed=0))
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
    bb = load_backbone(run_config().model)
    with pytest.raises(ValueError, match="single token"):
        bb.add_placeholder_tokens(["<x>"], "quiet harbor")


def test_max_norm_keeps_the_learned_row_on_the_ball_and_a_bad_value_names_the_key(tmp_path, micro_world):
    from benchmark.config import ConfigError, PrivacyConfig  # noqa: F401

    run = run_config()
    bb = load_backbone(run.model)
    data = load_dataset(run.dataset, 32)
    init_norm = float(bb.text_encoder.get_input_embeddings().weight[bb.tokenizer.convert_tokens_to_ids("painting")]
                      .norm())
    ti = method_from_yaml("ti", max_steps=4, batch_size=4, learning_rate=0.5, max_norm=init_norm / 2)
    learned = ti.adapt(bb, data, context(run, tmp_path, seed=0)).embeddings["<S*>"]
    assert float(learned.norm()) == pytest.approx(init_norm / 2, rel=1e-5)  # lr 0.5 leaves the ball every step
    with pytest.raises(ValueError, match="method.max_norm"):
        method_from_yaml("ti", max_norm=-1.0).check(run.privacy)


@pytest.mark.slow  # two jobs (~10 s)
def test_embedding_file_binds_the_row_and_refuses_a_missing_file_or_a_wrong_width(tmp_path, run_job):
    from safetensors.torch import save_file

    from benchmark.config import ConfigError

    width = load_backbone(run_config().model).text_encoder.get_input_embeddings().weight.shape[1]
    row = torch.randn(width, generator=torch.Generator().manual_seed(0))
    save_file({"<S*>": row}, tmp_path / "row.safetensors")
    metrics, out = run_job(["method=embedding_file", f"method.path={tmp_path / 'row.safetensors'}"])
    assert metrics["adapt/embedding_norm"] == pytest.approx(float(row.norm()))
    assert metrics["privacy/epsilon"] == float("inf") and "eval/private_style_rate" in metrics
    with pytest.raises(ConfigError, match="method.path=.*no such file"):
        method_from_yaml("embedding_file", path=str(tmp_path / "absent.safetensors")).check(run_config().privacy)
    save_file({"<S*>": torch.zeros(width + 1)}, tmp_path / "wide.safetensors")
    with pytest.raises(ConfigError, match=f"{width + 1} values.*{width}"):
        run_job(["method=embedding_file", f"method.path={tmp_path / 'wide.safetensors'}"], tmp_path / "wide")
