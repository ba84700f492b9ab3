"""Per-image TI (DPAgg-TI step 1): one batched run equals independent per-image runs."""

from __future__ import annotations

import torch

from benchmark.adapt.per_image_ti import PerImageStepDataset, train_per_image_embeddings
from benchmark.adapt.textual_inversion import TextualInversionModule
from benchmark.datasets import load_dataset
from benchmark.lightning.factories import make_trainer_factory
from benchmark.models.backbone import load_backbone
from tests.adapt._helpers import run_config

TEMPLATES = ["{caption} in the style of {}", "a painting in the style of {}"]


def _train(backbone, mu, sd, captions, ids, init, root, steps=3, chunk=None):
    return train_per_image_embeddings(
        backbone, mu, sd, captions, ids, TEMPLATES, init, steps=steps, learning_rate=0.05, batch_size=2, seed=3,
        make_trainer=make_trainer_factory(run_config().strategy, None, root), chunk_images=chunk)


def test_batched_per_image_ti_equals_independent_per_image_runs(micro_world, tmp_path):
    run = run_config()
    backbone = load_backbone(run.model)
    data = load_dataset(run.dataset, 32)
    k = 4
    mu, sd = backbone.encode_images(data.adapt.images[:k])
    captions = data.adapt.captions[:k]
    init = backbone.text_encoder.get_input_embeddings().weight[5].detach().clone()
    table_before = backbone.text_encoder.get_input_embeddings().weight.detach().clone()

    batched = _train(backbone, mu, sd, captions, list(range(k)), init, tmp_path)
    independent = torch.stack([_train(backbone, mu[i:i + 1], sd[i:i + 1], captions[i:i + 1], [i], init, tmp_path)[0]
                               for i in range(k)])
    torch.testing.assert_close(batched, independent, atol=1e-5, rtol=0)
    assert all((batched[i] - init).abs().max() > 1e-3 for i in range(k)), "a row did not train"
    assert (batched[0] - batched[1]).abs().max() > 1e-4, "rows should differ: each has its own image"
    # Chunked forward passes (memory) change only the order of float sums.
    torch.testing.assert_close(_train(backbone, mu, sd, captions, list(range(k)), init, tmp_path, chunk=3), batched,
                               atol=1e-5, rtol=0)
    # The backbone is left with a plain table; no private row was written into it.
    table = backbone.text_encoder.get_input_embeddings()
    assert isinstance(table, torch.nn.Embedding)
    torch.testing.assert_close(table.weight[: len(table_before)], table_before)
    assert not any(torch.allclose(table.weight[-k:][i], batched[i]) for i in range(k))

    # A plain PyTorch loop on image 2 alone (no Lightning), same draws: the same row.
    ids = backbone.tokenizer.convert_tokens_to_ids(["<S*_2>"])
    ti = TextualInversionModule(backbone, ids, init.unsqueeze(0), 0.05, seed=0)
    prompts = backbone.tokenize([t.replace("{caption}", captions[2]).format("<S*_2>") for t in TEMPLATES])
    steps = PerImageStepDataset(mu[2:3], sd[2:3], prompts.unsqueeze(0), [2], 3, 2, 3,
                                backbone.scheduler.config.num_train_timesteps)
    opt = ti.configure_optimizers()
    for s in range(3):
        opt.zero_grad()
        ti.denoising_loss(steps[s]).mean().backward()
        opt.step()
    backbone.text_encoder.set_input_embeddings(ti.embedding.base)
    torch.testing.assert_close(ti.embedding.rows.detach()[0], batched[2], atol=1e-5, rtol=0)


def test_the_draws_of_an_image_do_not_depend_on_the_other_images():
    mu, sd = torch.zeros(3, 4, 2, 2), torch.ones(3, 4, 2, 2)
    ids = torch.arange(3 * 2 * 5).view(3, 2, 5)
    together = PerImageStepDataset(mu, sd, ids, [0, 1, 2], steps=4, draws=2, seed=9, num_timesteps=1000)
    alone = PerImageStepDataset(mu[1:2], sd[1:2], ids[1:2], [1], steps=4, draws=2, seed=9, num_timesteps=1000)
    for step in (3, 0):  # any order
        a, b = together[step], alone[step]
        for key in a:
            assert torch.equal(a[key][2:4], b[key]), key
    assert not torch.equal(together[0]["noise"][:2], together[1]["noise"][:2])  # fresh draws each step
