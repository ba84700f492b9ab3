"""Evaluation's inputs are checked before any training or sampling, naming the key and file."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from benchmark.config import validate_config
from benchmark.preflight import PreflightError, check_clip, check_copy_detector, check_fidelity, preflight
from tests.helpers import compose


def _cfg(*overrides: str):
    return validate_config(compose(["logger=none", *overrides]))


def _data(heldout: int, adapt: int = 4):
    return SimpleNamespace(name="d", heldout=[0] * heldout, adapt=[0] * adapt)


def test_built_clip_folder_passes(sd15_reduced):
    check_clip(str(sd15_reduced / "clip"))


def test_clip_folder_without_weights_is_refused(sd15_reduced, tmp_path):
    folder = shutil.copytree(sd15_reduced / "clip", tmp_path / "clip")
    (folder / "model.safetensors").unlink()
    with pytest.raises(PreflightError, match=r"model.clip_model=.*lacks model.safetensors"):
        check_clip(str(folder))


def test_uncached_hub_clip_offline_is_refused(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PreflightError, match=r"model.clip_model='nobody/no-such-clip' cannot be loaded"):
        check_clip("nobody/no-such-clip")


def test_missing_clip_path_is_refused(tmp_path):
    with pytest.raises(PreflightError, match="no such folder"):
        check_clip(str(tmp_path / "a" / "b" / "clip"))


def test_missing_sscd_file_is_refused(tmp_path):
    check_copy_detector(None)
    with pytest.raises(PreflightError, match=r"model.copy_detector=.*sscd.pt.*no such SSCD"):
        check_copy_detector(str(tmp_path / "sscd.pt"))


def test_fidelity_needs_two_images_each_side():
    run = _cfg("eval=fast")
    check_fidelity(run.eval, 2)
    with pytest.raises(PreflightError, match="held-out split has 1 image"):
        check_fidelity(run.eval, 1)
    with pytest.raises(PreflightError, match="eval.num_images=1"):
        check_fidelity(_cfg("eval=fast", "eval.num_images=1").eval, 10)


def test_preflight_checks_only_what_the_metrics_use(tmp_path):
    sd15 = _cfg("model=sd15", "model.copy_detector=/nonexistent/sscd.pt", "eval=memorization",
                "eval.metrics=[detection]")
    preflight(sd15.model, sd15.eval, _data(0), None)  # no CLIP, copy or fidelity metric: nothing to check
    mem = _cfg("model=sd15", "model.copy_detector=/nonexistent/sscd.pt", "eval=memorization",
               "eval.metrics=[memorization]")
    with pytest.raises(PreflightError, match="model.copy_detector"):
        preflight(mem.model, mem.eval, _data(0), None)
    fid = _cfg("model=sd15", f"model.clip_model={tmp_path}/x/y/clip", "model.inception=false",
               "eval.metrics=[fidelity]")
    with pytest.raises(PreflightError, match="model.clip_model"):  # CLIP stands in for Inception
        preflight(fid.model, fid.eval, _data(4), None)
    world = _cfg("eval.metrics=[clip_score,fidelity]")
    preflight(world.model, world.eval, _data(4), tmp_path)  # the world's own CLIP: not checked here


def test_prompt_only_dataset_serves_guidance_and_detection_only():
    run = _cfg("model=sd15", "eval=memorization", "eval.metrics=[detection,trigger]")
    preflight(run.model, run.eval, _data(0, adapt=0), None)
    with pytest.raises(PreflightError, match="method=ti learns from the adaptation images"):
        preflight(run.model, run.eval, _data(0, adapt=0), None, "ti")
    mem = _cfg("model=sd15", "eval=memorization", "eval.metrics=[memorization]")
    with pytest.raises(PreflightError, match=r"eval.metrics=\[clip_score,detection,trigger\]"):
        preflight(mem.model, mem.eval, _data(0, adapt=0), None)
