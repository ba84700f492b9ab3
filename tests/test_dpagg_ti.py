"""DPAgg-TI on the micro world: batched per-image TI, the embedding cache, end-to-end runs."""

from __future__ import annotations

import json
import math
import stat
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from benchmark.config import ModelConfig, validate_config, default_config
from benchmark.data.datasets import load_dataset
from benchmark.lightning.factories import make_trainer_factory
from benchmark.adapt.base import RunContext
from benchmark.adapt.dpagg_ti import DPAggTI, PerImageStepDataset, train_per_image_embeddings
from benchmark.adapt.embedding_cache import cache_key, model_identity
from benchmark.adapt.textual_inversion import TextualInversionModule
from benchmark.models.backbone import load_backbone
from benchmark.privacy import PrivacyWarning
from tests.conftest import SMOKE, compose

TEMPLATES = ["{caption} in the style of {}", "a painting in the style of {}"]


def _setup(tmp_path, overrides=()):
    tmp_path.mkdir(parents=True, exist_ok=True)  # run.py creates the run directory before adapting
    run = validate_config(compose(SMOKE + ["method=dpagg_ti", *overrides]))
    backbone = load_backbone(run.model)
    data = load_dataset(run.dataset, run.model.resolution)
    ctx = RunContext(tmp_path, run.seed, run.privacy, run.strategy, make_trainer_factory(run.strategy, None, tmp_path))
    return backbone, data, ctx


def _train(backbone, mu, sd, captions, ids, init, root, steps=3, chunk=None):
    return train_per_image_embeddings(
        backbone, mu, sd, captions, ids, TEMPLATES, init, steps=steps, learning_rate=0.05, batch_size=2, seed=3,
        make_trainer=make_trainer_factory(validate_config(compose(SMOKE)).strategy, None, root), chunk_images=chunk)


def test_batched_per_image_ti_equals_independent_per_image_runs(micro_world, tmp_path):
    backbone = load_backbone(default_config(ModelConfig, "model=micro"))
    data = load_dataset(validate_config(compose(SMOKE)).dataset, 32)
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


def test_a_second_epsilon_reuses_the_cache_and_trains_nothing(micro_world, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    method = DPAggTI(max_steps=2, batch_size=2, cache_dir=str(cache))
    backbone, data, ctx = _setup(tmp_path / "eps1", ["privacy=dp", "privacy.epsilon=1"])
    first = method.adapt(backbone, data, ctx)
    assert first.metrics["adapt/cache_hit"] == 0 and first.metrics["adapt/per_image_train_s"] > 0
    entries = list(cache.iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".safetensors"  # no temporary files left
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(entries[0].stat().st_mode) == 0o600
    stored = load_file(entries[0])["embeddings"]
    assert stored.shape == (len(data.adapt), first.embeddings["<S*>"].shape[0])

    def must_not_train(*args, **kwargs):
        raise AssertionError("the second epsilon trained per-image embeddings")

    monkeypatch.setattr("benchmark.adapt.dpagg_ti.train_per_image_embeddings", must_not_train)
    backbone, data, ctx = _setup(tmp_path / "eps4", ["privacy=dp", "privacy.epsilon=4"])
    second = method.adapt(backbone, data, ctx)
    assert second.metrics["adapt/cache_hit"] == 1 and second.metrics["adapt/per_image_train_s"] == 0
    assert second.privacy["epsilon"] <= 4 and second.privacy["sigma"] < first.privacy["sigma"]
    torch.testing.assert_close(load_file(entries[0])["embeddings"], stored, atol=0, rtol=0)
    # epsilon = inf: the exact mean of the normalised cached embeddings, the non-private counterpart.
    backbone, data, ctx = _setup(tmp_path / "inf", ["privacy=none"])
    exact = method.adapt(backbone, data, ctx)
    radius = exact.metrics["adapt/clip_radius"]
    expected = (stored * radius / stored.norm(dim=1, keepdim=True)).mean(0)
    torch.testing.assert_close(exact.embeddings["<S*>"], expected, atol=1e-5, rtol=0)
    assert exact.privacy["epsilon"] == math.inf and exact.privacy["private"] is False
    # The run directories hold the DP release only, never the per-image embeddings.
    for run_dir in ("eps1", "eps4", "inf"):
        files = [p.name for p in (tmp_path / run_dir).rglob("*") if p.is_file()]
        assert files == ["learned_embeds.safetensors"], files
        assert list(load_file(tmp_path / run_dir / "learned_embeds.safetensors")) == ["<S*>"]


def test_the_cache_key_changes_with_everything_the_embeddings_depend_on(micro_world, tmp_path):
    backbone, data, ctx = _setup(tmp_path)
    identity = model_identity(backbone)
    assert identity["hash_of"] == "world.json"
    method = DPAggTI()
    base = cache_key(method.cache_material(identity, data, ctx, TEMPLATES))
    assert base == cache_key(DPAggTI(chunk_images=2).cache_material(identity, data, ctx, TEMPLATES))
    variants = [
        DPAggTI(max_steps=7).cache_material(identity, data, ctx, TEMPLATES),
        DPAggTI(learning_rate=0.1).cache_material(identity, data, ctx, TEMPLATES),
        DPAggTI(batch_size=3).cache_material(identity, data, ctx, TEMPLATES),
        method.cache_material(identity, data, ctx, TEMPLATES[:1]),
        method.cache_material({**identity, "hash": "0" * 64}, data, ctx, TEMPLATES),
        method.cache_material(identity, data, RunContext(tmp_path, ctx.seed + 1, ctx.privacy, ctx.strategy, None),
                              TEMPLATES),
    ]
    other_data = load_dataset(validate_config(compose(SMOKE + ["dataset.world.seed=1"])).dataset, 32)
    variants.append(method.cache_material(identity, other_data, ctx, TEMPLATES))
    keys = {cache_key(v) for v in variants}
    assert base not in keys and len(keys) == len(variants)


def test_dpagg_run_reports_the_privacy_it_spent(run_job, tmp_path):
    cache = tmp_path / "cache"
    common = ["method=dpagg_ti", "method.max_steps=2", "method.batch_size=2", f"method.cache_dir={cache}"]
    metrics, out = run_job([*common, "privacy=dp", "privacy.epsilon=1"], tmp_path / "eps1")
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["method"] == "dpagg_ti" and saved["privacy/epsilon"] <= 1.0
    assert saved["privacy/delta"] == 1e-5 and saved["privacy/private"] is True
    for key in ("privacy/noise_multiplier", "privacy/sigma", "privacy/sample_rate", "privacy/accountant",
                "privacy/neighbouring", "privacy/sensitivity", "adapt/cache_hit", "adapt/per_image_train_s",
                "adapt/clip_radius", "adapt/num_images", "eval/fid", "eval/private_style_rate"):
        assert key in saved, key
    assert saved["privacy/sigma"] > 0 and saved["privacy/sample_rate"] == 1.0
    assert saved["privacy/accountant"] == "analytic_gaussian" and saved["adapt/cache_hit"] == 0
    assert saved["privacy/mechanism_randomness"] == "secret"
    assert (out / "learned_embeds.safetensors").is_file()
    again, _ = run_job([*common, "privacy=none"], tmp_path / "inf")
    assert again["privacy/epsilon"] == math.inf and again["adapt/cache_hit"] == 1


@pytest.mark.parametrize("overrides, match", [
    (["privacy.epsilon=0"], "privacy.epsilon"),
    (["privacy.epsilon=-2"], "privacy.epsilon"),
    (["privacy.epsilon=abc"], "privacy.epsilon"),
    (["privacy.delta=0"], "privacy.delta"),
    (["privacy.delta=1.5"], "privacy.delta"),
    (["method.subsample_size=9"], "method.subsample_size"),  # m > n = 8
    (["method.subsample_size=4"], "privacy.accountant"),  # replace-one with m < n needs rdp
    (["dataset.world.num_adapt=1"], "at least 2 adaptation images"),
    (["method.clip_radius=0"], "method.clip_radius"),
    (["method.clip_radius=-1.5"], "method.clip_radius"),
    (["method.bound=squash"], "method.bound"),
    (["method.neighbouring=swap"], "method.neighbouring"),
])
def test_bad_input_names_the_key_before_any_training(run_job, tmp_path, overrides, match):
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=match.replace(".", r"\.")):
        run_job(["method=dpagg_ti", "privacy=dp", f"method.cache_dir={cache}", *overrides])
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not cache.exists(), "per-image embeddings were trained before the input was checked"


def test_delta_at_least_one_over_n_warns_and_says_why(micro_world, tmp_path):
    backbone, data, ctx = _setup(tmp_path, ["privacy=dp", "privacy.delta=0.2"])
    with pytest.warns(PrivacyWarning, match=r"1/n = 1/8.*release a whole private record"):
        n, m, radius, report = DPAggTI().plan(backbone, data, ctx.privacy)
    assert (n, m) == (8, 8) and report.epsilon <= 1.0 and radius > 0


def test_default_radius_is_the_models_embedding_radius_else_the_vocabulary_mean_norm(micro_world, tmp_path):
    from benchmark.adapt.dpagg_ti import vocabulary_mean_norm

    backbone, data, ctx = _setup(tmp_path, ["privacy=dp"])
    assert backbone.embedding_radius == 3.0  # conf/model/micro.yaml, as the shipped world
    assert DPAggTI().plan(backbone, data, ctx.privacy)[2] == 3.0
    assert DPAggTI(clip_radius=0.5).plan(backbone, data, ctx.privacy)[2] == 0.5  # the method's own R wins
    backbone.embedding_radius = None  # a real model: METHODS.md's default
    weights = backbone.text_encoder.get_input_embeddings().weight.detach()
    expected = float(weights.norm(dim=1).mean())
    assert vocabulary_mean_norm(backbone) == pytest.approx(expected)
    assert DPAggTI().plan(backbone, data, ctx.privacy)[2] == pytest.approx(expected)


def test_cli_bad_input_exits_nonzero_without_metrics(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "benchmark", "experiment=smoke", "method=dpagg_ti", "privacy=dp",
         "method.clip_radius=-1", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 1 and "method.clip_radius" in res.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
