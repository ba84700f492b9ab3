"""Every guidance method in a whole run on the micro world's memorization set (no adaptation)."""

import json

import pytest

from benchmark.config import ConfigError
from benchmark.sampling.generate import read_index

MEMORIZATION = ["method=none", "dataset=tiny_memorized", "dataset.world.num_adapt=4", "eval.images_per_prompt=1",
                "eval=memorization"]


def _auc(pos, neg):
    """P(pos > neg) + 0.5 P(tie), by counting pairs."""
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_prss_reports_detection_trigger_and_group_scores(run_job):
    metrics, out = run_job([*MEMORIZATION, "guidance=prss", "guidance.calibration_images=8"])
    for key in ("eval/trigger_fraction", "eval/memorized_trigger_fraction", "eval/control_trigger_fraction",
                "eval/memorized_clip_score", "eval/control_clip_score", "eval/memorized_fraction_copied",
                "guidance/lambda_ss", "guidance/lambda_pr", "guidance/tau", "time/calibrate_s"):
        assert key in metrics, key
    assert metrics["guidance/lambda_pr"] < metrics["guidance/tau"]
    # A calibrating guidance on the base model: its job type names the stages that ran.
    assert metrics["job_type"] == "calibrate-sample-evaluate"
    assert metrics["guidance/calibration_images"] == 8 and "adapt/steps" not in metrics
    # Detection from the per-image stats in index.jsonl (one image per prompt: per-image = per-prompt).
    rows = read_index(out / "images")
    pos = [r["first_step_magnitude"] for r in rows if r["memorized"]]
    neg = [r["first_step_magnitude"] for r in rows if r["memorized"] is False]
    assert pos and neg
    assert metrics["eval/detection_auc"] == pytest.approx(_auc(pos, neg))
    assert json.loads((out / "metrics.json").read_text())["guidance"] == "prss"


def test_bad_thresholds_fail_before_anything_runs(run_job, tmp_path):
    with pytest.raises(ConfigError, match="guidance.lambda_pr"):
        run_job([*MEMORIZATION, "guidance=prss", "guidance.lambda_pr=5", "guidance.tau=5"])
    assert not (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "run" / "images").exists()


@pytest.mark.slow  # one job each; keeps the default suite within 3 minutes
@pytest.mark.parametrize("name", ["none", "pe", "rna", "rt", "cwr", "gni"])
def test_every_guidance_runs_end_to_end(run_job, name):
    overrides = ["guidance.calibration_images=8"] if name == "pe" else []
    metrics, out = run_job([*MEMORIZATION, f"guidance={name}", *overrides])
    assert metrics["guidance"] == name and "eval/memorized_clip_score" in metrics
    assert "eval/detection_auc" in metrics
    rows = read_index(out / "images")
    assert len(rows) == metrics["eval/num_images"] and all("first_step_magnitude" in r for r in rows)
    assert ("guidance/target_loss" in metrics) == (name == "pe")
