"""End-to-end runs on the micro world: outputs, reproducibility, logging."""

import json

import pytest

TIMING_OR_PROVENANCE = ("time/",)


def _stable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith(TIMING_OR_PROVENANCE)}


def test_ti_run_writes_metrics_grid_images_and_artifact(run_job):
    metrics, out = run_job(["method.max_steps=5", "method.batch_size=4"])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["method"] == "ti" and saved["dataset"] == "tiny_style" and saved["privacy/epsilon"] == "inf"
    for key in ("config_hash", "git_commit", "world_recipe", "version/torch", "version/diffusers",
                "time/adapt_s", "time/sample_s", "time/evaluate_s", "eval/fid", "eval/kid", "eval/clip_score",
                "eval/accuracy_shape", "eval/private_style_rate", "eval/adapt_set_similarity_mean"):
        assert key in saved, key
    assert all(not isinstance(v, (dict, list)) for v in saved.values()), "metrics.json must be flat"
    assert len(list((out / "images").glob("*.png"))) == 8
    assert (out / "samples_grid.png").is_file() and (out / "learned_embeds.safetensors").is_file()
    assert saved["adapt/steps"] == 5


def test_same_config_and_seed_give_the_same_metrics(run_job, tmp_path):
    first, _ = run_job(["method.max_steps=3", "seed=4"], tmp_path / "a")
    second, _ = run_job(["method.max_steps=3", "seed=4"], tmp_path / "b")
    assert _stable(first) == _stable(second)
    third, _ = run_job(["method.max_steps=3", "seed=5"], tmp_path / "c")
    assert third["config_hash"] != first["config_hash"]
    assert third["eval/fid"] != first["eval/fid"]


def test_base_model_on_the_memorized_set_reports_split_memorization(run_job):
    metrics, _ = run_job(["method=none", "dataset=tiny_memorized", "dataset.world.num_adapt=4",
                          "eval.images_per_prompt=1"])
    assert metrics["eval/num_images"] == 16 + 4  # one image per memorized and per control caption
    for group in ("memorized", "control"):
        assert -1.0 <= metrics[f"eval/{group}_similarity_mean"] <= 1.0
        assert 0.0 <= metrics[f"eval/{group}_fraction_copied"] <= 1.0


def test_wandb_offline_run_logs_generations_but_no_training_images(run_job, tmp_path):
    metrics, out = run_job(["method=none", "logger=wandb_offline"])
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = [p.name for p in runs[0].rglob("*.png")]
    assert media and all(name.startswith("samples_grid") for name in media), media
    summary = (runs[0] / "files" / "wandb-summary.json")
    if summary.exists():
        assert "eval/fid" in json.loads(summary.read_text())
    assert (out / "metrics.json").is_file()


def test_non_private_method_refuses_a_finite_epsilon(run_job):
    with pytest.raises(ValueError, match="not differentially private"):
        run_job(["privacy=dp", "method.max_steps=2"])
