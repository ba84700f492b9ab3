"""End-to-end runs on the micro world: outputs, reproducibility, logging."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.config import validate_config
from benchmark.datasets import load_dataset
from benchmark.lightning import loggers
from benchmark.metrics.memorization import PixelCopyDescriptor
from benchmark.sampling.generate import read_index
from tests.helpers import SMOKE, compose

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
    assert saved["job_type"] == "adapt-sample-evaluate" and "guidance/calibration_images" not in saved
    # Computed from private images beyond the release: marked, the rest is the release's.
    assert json.loads(saved["evaluation_only"]) == ["eval/adapt_set_fraction_copied", "eval/adapt_set_similarity_mean",
                                                    "eval/fid", "eval/kid"]


@pytest.mark.slow  # an end-to-end job: keeps the default suite within 3 minutes
def test_same_config_and_seed_give_the_same_metrics(run_job, tmp_path):
    first, _ = run_job(["method.max_steps=3", "seed=4"], tmp_path / "a")
    second, _ = run_job(["method.max_steps=3", "seed=4"], tmp_path / "b")
    assert _stable(first) == _stable(second)
    third, _ = run_job(["method.max_steps=3", "seed=5"], tmp_path / "c")
    assert third["config_hash"] != first["config_hash"]
    assert third["eval/fid"] != first["eval/fid"]


def test_base_model_on_the_memorized_set_reports_split_memorization(run_job):
    metrics, out = run_job(["method=none", "dataset=tiny_memorized", "dataset.world.num_adapt=4",
                            "eval.images_per_prompt=1"])
    assert metrics["eval/num_images"] == 16 + 4  # one image per memorized and per control caption
    # Recomputed from the written PNGs, index.jsonl and each prompt's ground truth: the copy
    # similarity of each generation to its own prompt's training image, per group.
    config = validate_config(compose(SMOKE + ["dataset=tiny_memorized", "dataset.world.num_adapt=4"]))
    data = load_dataset(config.dataset, 32)
    rows = read_index(out / "images")
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(out / "images" / r["file"]))).permute(2, 0, 1)
                          for r in rows])
    truth = data.adapt.images[[data.prompts[r["prompt_index"]].ground_truth[0] for r in rows]]
    similarity = (PixelCopyDescriptor()(images) * PixelCopyDescriptor()(truth)).sum(1)
    for group, flag in (("memorized", True), ("control", False)):
        mine = similarity[[k for k, r in enumerate(rows) if r["memorized"] is flag]]
        assert len(mine) == (16 if flag else 4)
        assert metrics[f"eval/{group}_similarity_mean"] == pytest.approx(float(mine.mean()), abs=1e-6)
        assert metrics[f"eval/{group}_fraction_copied"] == pytest.approx(float((mine > 0.75).float().mean()))


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI's slow pass runs it
def test_wandb_offline_run_logs_generations_but_no_training_images(run_job, tmp_path, monkeypatch):
    given = {}
    init = loggers.BenchmarkWandbLogger.__init__

    def spy(self, *args, **kwargs):  # what the run tells W&B
        given.update(kwargs)
        init(self, *args, **kwargs)

    monkeypatch.setattr(loggers.BenchmarkWandbLogger, "__init__", spy)
    metrics, out = run_job(["method=none", "logger=wandb_offline"])
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = [p.name for p in runs[0].rglob("*.png")]
    assert media and all(name.startswith("samples_grid") for name in media), media
    # The base model with plain CFG learns and calibrates nothing: its W&B job type says so.
    assert given["job_type"] == metrics["job_type"] == "sample-evaluate"
    assert "guidance:none" in given["tags"] and "method:none" in given["tags"]
    assert given["config"]["evaluation_only"] == json.loads(metrics["evaluation_only"])  # marked on W&B too
    assert (out / "metrics.json").is_file()


def test_non_private_method_refuses_a_finite_epsilon(run_job):
    with pytest.raises(ValueError, match="not differentially private"):
        run_job(["privacy=dp", "method.max_steps=2"])


def test_a_dp_method_evaluated_on_private_captions_is_warned_about(caplog):
    from benchmark.run import build_method, warn_if_private_prompts

    memorized = validate_config(compose(SMOKE + ["dataset=tiny_memorized"])).dataset  # no eval_prompts
    style = validate_config(compose(SMOKE)).dataset
    with caplog.at_level("WARNING", logger="benchmark.run"):
        warn_if_private_prompts(build_method(compose(["method=dpagg_ti"]).method), style)
        warn_if_private_prompts(build_method(compose(["method=ti"]).method), memorized)  # not DP: nothing to warn
        assert not caplog.records
        warn_if_private_prompts(build_method(compose(["method=dpagg_ti"]).method), memorized)
    assert "lists no eval_prompts" in caplog.text and "tiny_memorized" in caplog.text
