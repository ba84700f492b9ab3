"""DPAgg-TI on the micro world: the embedding cache, end-to-end runs, bad input, the default radius."""

from __future__ import annotations

import json
import math
import stat
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from benchmark.adapt.base import RunContext
from benchmark.adapt.dpagg_ti import vocabulary_mean_norm
from benchmark.adapt.embedding_cache import cache_key, model_identity
from benchmark.datasets import load_dataset
from benchmark.models.backbone import load_backbone
from benchmark.privacy import PrivacyWarning
from tests.adapt._helpers import context, method_from_yaml, run_config

TEMPLATES = ["{caption} in the style of {}", "a painting in the style of {}"]


def _setup(tmp_path, overrides=()):
    run = run_config("method=dpagg_ti", *overrides)
    backbone = load_backbone(run.model)
    data = load_dataset(run.dataset, run.model.resolution)
    return backbone, data, context(run, tmp_path)


def dpagg(**fields):
    return method_from_yaml("dpagg_ti", **fields)


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI's slow pass runs it
def test_a_second_epsilon_reuses_the_cache_and_trains_nothing(micro_world, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    method = dpagg(max_steps=2, batch_size=2, cache_dir=str(cache))
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


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI's slow pass runs it
def test_the_cache_key_changes_with_everything_the_embeddings_depend_on(micro_world, tmp_path):
    backbone, data, ctx = _setup(tmp_path)
    identity = model_identity(backbone)
    assert identity["hash_of"] == "world.json"
    method = dpagg()
    base = cache_key(method.cache_material(identity, data, ctx, TEMPLATES))
    assert base == cache_key(dpagg(chunk_images=2).cache_material(identity, data, ctx, TEMPLATES))
    variants = [
        dpagg(max_steps=7).cache_material(identity, data, ctx, TEMPLATES),
        dpagg(learning_rate=0.1).cache_material(identity, data, ctx, TEMPLATES),
        dpagg(batch_size=3).cache_material(identity, data, ctx, TEMPLATES),
        method.cache_material(identity, data, ctx, TEMPLATES[:1]),
        method.cache_material({**identity, "hash": "0" * 64}, data, ctx, TEMPLATES),
        method.cache_material(identity, data, RunContext(tmp_path, ctx.seed + 1, ctx.privacy, ctx.strategy, None),
                              TEMPLATES),
    ]
    other_data = load_dataset(run_config("dataset.world.seed=1").dataset, 32)
    variants.append(method.cache_material(identity, other_data, ctx, TEMPLATES))
    keys = {cache_key(v) for v in variants}
    assert base not in keys and len(keys) == len(variants)


def test_dpagg_run_reports_the_privacy_it_spent(run_job, tmp_path, monkeypatch):
    from benchmark.adapt import dpagg_ti
    from benchmark.privacy.randomness import release_rng

    keys = []  # the release's Philox keys: 128 secret bits, or the configured seed

    def recording_rng(key, purpose):
        keys.append(key)
        return release_rng(key, purpose)

    monkeypatch.setattr(dpagg_ti, "release_rng", recording_rng)
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
    assert saved["privacy/mechanism_randomness"] == "secret" and saved["privacy/valid_against"] == "everyone"
    assert (out / "learned_embeds.safetensors").is_file()
    again, _ = run_job([*common, "privacy=none"], tmp_path / "inf")
    assert again["privacy/epsilon"] == math.inf and again["adapt/cache_hit"] == 1
    assert again["privacy/valid_against"] == "no-one"
    seeded, _ = run_job([*common, "privacy=dp", "privacy.epsilon=1", "method.mechanism_seed=3"],
                        tmp_path / "seeded")
    assert seeded["privacy/mechanism_randomness"] == "seeded"
    assert seeded["privacy/valid_against"] == "no-one-with-the-seed"  # the seed is in the run directory
    assert keys[0].bit_length() > 64 and keys[2] == 3  # P(a secret 128-bit key < 2^64) = 2^-64


def test_a_mechanism_seed_never_leaves_the_machine():
    from benchmark.results import public_config

    resolved = {"method": {"name": "dpagg_ti", "mechanism_seed": 3}, "seed": 0}
    assert public_config(resolved)["method"]["mechanism_seed"] == "<withheld>"
    assert resolved["method"]["mechanism_seed"] == 3  # the local record keeps it
    assert public_config({"method": {"mechanism_seed": None}})["method"]["mechanism_seed"] is None


@pytest.mark.parametrize("overrides, match", [
    (["privacy.epsilon=0"], "privacy.epsilon"),
    (["privacy.epsilon=-2"], "privacy.epsilon"),
    (["privacy.epsilon=abc"], "privacy.epsilon"),
    (["privacy.delta=0"], "privacy.delta"),
    (["privacy.delta=1.5"], "privacy.delta"),
    (["method.subsample_size=9"], "method.subsample_size"),  # m > n = 8
    (["method.neighbouring=add_remove"], "method.subsample_size"),  # the mean's divisor must be public
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
        n, m, radius, report = dpagg().plan(backbone, data, ctx.privacy)
    assert (n, m) == (8, 8) and report.epsilon <= 1.0 and radius > 0


def test_default_radius_is_the_models_embedding_radius_else_the_vocabulary_mean_norm(micro_world, tmp_path):
    backbone, data, ctx = _setup(tmp_path, ["privacy=dp"])
    assert backbone.embedding_radius is None  # conf/model/micro.yaml, as the shipped world (since tinyworld-v4)
    backbone.embedding_radius = 3.0  # a model that sets model.embedding_radius: its R is the default
    assert dpagg().plan(backbone, data, ctx.privacy)[2] == 3.0
    assert dpagg(clip_radius=0.5).plan(backbone, data, ctx.privacy)[2] == 0.5  # the method's own R wins
    backbone.embedding_radius = None  # a real model: METHODS.md's default, the mean row norm
    table = backbone.text_encoder.get_input_embeddings().weight
    vocab = table.shape[0]
    with torch.no_grad():  # row i = (i+1) * (3, 4, 0, ...): norm 5 (i+1), so the mean is 5 (V+1)/2
        table.zero_()
        table[:, 0] = 3.0 * torch.arange(1, vocab + 1)
        table[:, 1] = 4.0 * torch.arange(1, vocab + 1)
    expected = 5.0 * (vocab + 1) / 2
    assert vocabulary_mean_norm(backbone) == pytest.approx(expected, rel=1e-6)
    assert dpagg().plan(backbone, data, ctx.privacy)[2] == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_cli_bad_input_exits_nonzero_without_metrics(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "benchmark", "experiment=smoke", "method=dpagg_ti", "privacy=dp",
         "method.clip_radius=-1", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 1 and "method.clip_radius" in res.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
