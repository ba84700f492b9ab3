"""The README's main job on the shipped world (slow: run with `pytest -m slow`)."""

import json
import subprocess
import sys

import pytest

from benchmark.models.backbone import PACKAGED_WORLD

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (PACKAGED_WORLD / "world.json").exists(), reason="packaged world not built"),
]


def _main_job(tmp_path, *overrides):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "benchmark", *overrides, f"hydra.run.dir={out}"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text()), out, res.stdout + res.stderr


def test_main_job_learns_the_private_style_and_logs_to_wandb_offline(tmp_path):
    metrics, out, stdout = _main_job(tmp_path)  # exactly the README's `python -m benchmark`
    assert "eval/private_style_rate" in stdout  # the printed metrics table
    # One console line per event: Lightning's own handler ("INFO: ...") is gone, and its device
    # banner, repeated by the adapt and the sample stage's trainers, shows once; no tips.
    assert stdout.count("GPU available:") == 1 and "litlogger" not in stdout
    assert not [line for line in stdout.splitlines() if line.startswith("INFO: ")]
    assert list((out / "wandb").glob("offline-run-*")), "no offline W&B run"
    assert (out / ".hydra" / "config.yaml").is_file() and (out / "samples_grid.png").is_file()
    # Its time (bar: 5 minutes) is measured on an idle machine and committed (results/timings.md),
    # not asserted: on cores shared with other jobs it took 790 s, a fact about the load.
    base, _, _ = _main_job(tmp_path / "base", "method=none", "logger=none")
    # The learned token induces the private style; the same prompts without it do not.
    assert metrics["eval/private_style_rate"] >= base["eval/private_style_rate"] + 0.3
