"""Strength presets: the knob a sweep point used is in its composed config (and .hydra/)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmark.config import CONFIG_DIR, validate_config
from benchmark.config.strength import missing_preset
from tests.config.helpers import composed

REPO = CONFIG_DIR.parent
# The knob each guidance's presets set, weakest to strongest (results/prss_tiny_world.md).
KNOBS = {"prss": ("lambda_ss", ["2q0.99", "1.5q0.99", "q0.99"]), "pe": ("target_loss", ["q0.95", "q0.5", "q0.05"]),
         "rna": ("k", [1, 4, 8]), "rt": ("k", [1, 4, 8]), "cwr": ("k", [1, 4, 8]), "gni": ("scale", [0.5, 1, 2]),
         # Bright Ending variants: their base method's knob, on masked magnitudes (not in the default axes).
         "prss_be": ("lambda_ss", ["2q0.99", "1.5q0.99", "q0.99"]), "pe_be": ("target_loss", ["q0.95", "q0.5", "q0.05"])}
LEVELS = ("weak", "medium", "strong")


def _sweep_axes() -> dict[str, list[str]]:
    experiment = yaml.safe_load((CONFIG_DIR / "experiment" / "memorization_tradeoff.yaml").read_text())
    return {k: str(v).split(",") for k, v in experiment["hydra"]["sweeper"]["params"].items()}


def _point(guidance: str, strength: str):
    """One job of the memorization_tradeoff sweep (composed once per test session)."""
    return composed("experiment=memorization_tradeoff", f"guidance={guidance}", f"strength={strength}")


def test_memorization_tradeoff_sweeps_guidance_strength_and_seed():
    axes = _sweep_axes()
    assert axes == {"guidance": ["none", "prss", "pe", "rna", "rt", "cwr", "gni"], "strength": list(LEVELS),
                    "seed": ["0", "1"]}


# prss in the default suite, the other guidances in the slow pass (~1.2 s each).
@pytest.mark.parametrize("guidance", [g if g == "prss" else pytest.param(g, marks=pytest.mark.slow)
                                      for g in sorted(KNOBS)])
def test_each_point_of_the_sweep_holds_its_knob_value(guidance):
    knob, values = KNOBS[guidance]
    default = composed(f"guidance={guidance}").guidance[knob]
    for level, value in zip(LEVELS, values):
        cfg = _point(guidance, level)
        assert cfg.guidance[knob] == value and cfg.strength.name == level
        assert cfg.strength.preset == f"{guidance}_{level}" and missing_preset(cfg) is None
        validate_config(cfg)
    assert composed(f"guidance={guidance}", "strength=default").guidance[knob] == default


def test_every_sweep_point_runs_once_and_undefined_pairs_are_skipped():
    axes = _sweep_axes()
    runs = [(g, s) for g in axes["guidance"] for s in axes["strength"] if missing_preset(_point(g, s)) is None]
    assert len(runs) == 19 and ("none", "weak") in runs  # plain CFG once, at its first level
    validate_config(_point("none", "weak"))
    message = missing_preset(_point("none", "strong"))
    assert "none" in message and "strong" in message
    # strength=default needs no preset: every guidance runs at its YAML values.
    assert all(missing_preset(composed(f"guidance={g}")) is None for g in axes["guidance"])


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_the_cli_skips_an_undefined_pair_at_once_and_records_nothing(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "benchmark", "guidance=none", "strength=strong", "logger=none",
                          f"hydra.run.dir={out}"], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("skipped (guidance none has no strength preset 'strong'")
    assert not (out / "metrics.json").exists()
    assert "no strength preset" in json.loads((out / "skipped.json").read_text())["reason"]  # for the report
    # What Hydra recorded for the job is the composed config, strength included.
    recorded = yaml.safe_load((out / ".hydra" / "config.yaml").read_text())
    assert recorded["strength"] == {"name": "strong", "preset": None}


def test_preset_files_name_an_existing_guidance_and_strength():
    for file in (CONFIG_DIR / "guidance_strength").glob("*.yaml"):
        guidance, _, strength = file.stem.rpartition("_")
        assert (CONFIG_DIR / "guidance" / f"{guidance}.yaml").is_file(), file.name
        assert (CONFIG_DIR / "strength" / f"{strength}.yaml").is_file(), file.name
        assert Path(file).read_text().startswith("# @package _global_")
