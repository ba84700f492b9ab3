"""``--wandb``: the same table and gallery as report.html, in an offline W&B report run; tool lookups."""

import json
import math
import re

import pytest

from benchmark.report.browser import find_chromium
from benchmark.report.report import main
from benchmark.report.synthetic import make_synthetic_sweep
from benchmark.report.sweep import summarize
from benchmark.report.wandb_report import wandb_mode


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_wandb_report_run_holds_the_headline_table_and_every_gallery_image(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    make_synthetic_sweep(tmp_path, methods=("dpagg_ti",), epsilons=(1.0, math.inf), seeds=(0, 1), images_per_job=4)
    assert main([str(tmp_path), "--wandb", "--group", "my_sweep"]) == 0
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    tables = {p.name.split("_")[0]: json.loads(p.read_text()) for p in (run_dir / "files/media/table").glob("*.json")}
    assert set(tables) == {"summary", "headline", "gallery"}
    headline = tables["headline"]
    fid = headline["columns"].index("eval/fid mean")
    assert "eval/fid [privatedata]" in headline["columns"] and "privacy/epsilon [release]" in headline["columns"]
    assert [r[fid] for r in headline["data"]] == pytest.approx([r.mean("eval/fid") for r in summarize(tmp_path).rows])
    gallery = tables["gallery"]
    assert len(gallery["data"]) == 2 and all(len(r) == 2 + 4 for r in gallery["data"])
    # The images travel with the run (W&B stores table media beside the run log).
    log = next(run_dir.glob("*.wandb")).read_bytes().decode("latin-1")
    assert len(set(re.findall(r"media/images/\w+/\d+\.png", log))) == 8
    assert "my_sweep" in log and "report" in log  # group and job type
    assert list((run_dir / "files/media/images/plots").glob("utility_*.png"))  # the plot, as on the page


def test_wandb_mode_is_offline_without_an_account(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"


def test_find_chromium_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    browser, driver, why = find_chromium()
    assert browser is None and driver is None
    assert "no Chromium on PATH" in why and "apt-get install -y chromium" in why
