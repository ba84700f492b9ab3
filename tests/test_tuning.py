"""Hyperparameter choice on the public proxy (benchmark.report.tuning)."""

import json

import pytest

from benchmark.report.synthetic import synthetic_metrics
from benchmark.report.tuning import TuningError, main, write_tuning


def _job(root, name, method, eps, lr, rate, seed=0, population="proxy_style", dataset="tiny_proxy_style"):
    m = synthetic_metrics(method, eps, seed, knobs={"method.learning_rate": lr})
    m.update({"eval/proxy_style_rate": rate, "config/dataset/name": dataset,
              "config/dataset/world/population": population})
    (root / name).mkdir(parents=True)
    (root / name / "metrics.json").write_text(json.dumps(m))


def test_the_best_mean_over_seeds_is_chosen_per_method_and_epsilon(tmp_path):
    # lr 0.02 wins at eps 1 on the mean of two seeds (0.5, 0.3 -> 0.4 > 0.35) though 0.005 has the best single job.
    _job(tmp_path, "a0", "dpsgd_ti", 1.0, 0.005, 0.45, seed=0)
    _job(tmp_path, "a1", "dpsgd_ti", 1.0, 0.005, 0.25, seed=1)
    _job(tmp_path, "b0", "dpsgd_ti", 1.0, 0.02, 0.5, seed=0)
    _job(tmp_path, "b1", "dpsgd_ti", 1.0, 0.02, 0.3, seed=1)
    _job(tmp_path, "c0", "dpsgd_ti", float("inf"), 0.005, 0.9)
    _job(tmp_path, "d0", "dpsgd_ti", float("inf"), 0.02, 0.7)
    table = write_tuning(tmp_path, tmp_path / "out")
    assert table["dpsgd_ti@1"]["knobs"] == {"method.learning_rate": 0.02}
    assert table["dpsgd_ti@1"]["eval/proxy_style_rate"] == pytest.approx(0.4)
    assert table["dpsgd_ti@inf"]["knobs"] == {"method.learning_rate": 0.005}
    md = (tmp_path / "out" / "tuning.md").read_text()
    assert "tiny_proxy_style" in md and md.count("**dpsgd_ti**") == 2
    assert json.loads((tmp_path / "out" / "tuning.json").read_text())["dataset"] == "tiny_proxy_style"


def test_a_sweep_on_the_private_style_is_refused(tmp_path, capsys):
    _job(tmp_path, "a", "ti", float("inf"), 0.02, 0.8)
    _job(tmp_path, "b", "ti", float("inf"), 0.005, 0.9, population="private_style", dataset="tiny_style")
    with pytest.raises(TuningError, match="private population"):
        write_tuning(tmp_path, tmp_path / "out")
    assert main([str(tmp_path)]) == 2 and "public data only" in capsys.readouterr().out
    assert not (tmp_path / "tuning").exists()


def test_jobs_on_two_datasets_are_refused(tmp_path):
    _job(tmp_path, "a", "ti", float("inf"), 0.02, 0.8)
    _job(tmp_path, "b", "ti", float("inf"), 0.005, 0.9, dataset="other_public")
    with pytest.raises(TuningError, match="several datasets"):
        write_tuning(tmp_path, tmp_path / "out")


def test_the_config_default_is_the_best_setting_on_average_over_epsilons(tmp_path):
    # lr 0.02 is best at eps 1 (0.4 > 0.3) but 0.005 is best on average (0.6 > 0.55);
    # lr 0.05 has the best single row but never finished at eps 1, so it cannot be the default.
    for name, eps, lr, rate in [("a", 1.0, 0.005, 0.3), ("b", 1.0, 0.02, 0.4), ("c", float("inf"), 0.005, 0.9),
                                ("d", float("inf"), 0.02, 0.7), ("e", float("inf"), 0.05, 1.0)]:
        _job(tmp_path, name, "dpsgd_ti", eps, lr, rate)
    table = write_tuning(tmp_path, tmp_path / "out")
    assert table["dpsgd_ti@1"]["knobs"] == {"method.learning_rate": 0.02}
    assert table["dpsgd_ti@inf"]["knobs"] == {"method.learning_rate": 0.05}
    defaults = json.loads((tmp_path / "out" / "tuning.json").read_text())["defaults"]
    assert defaults["dpsgd_ti"]["knobs"] == {"method.learning_rate": 0.005}
    assert defaults["dpsgd_ti"]["eval/proxy_style_rate"] == pytest.approx(0.6)
    assert "| dpsgd_ti | 0.005 | 0.6 | 1, inf |" in (tmp_path / "out" / "tuning.md").read_text()


def test_the_method_configs_hold_the_committed_proxy_choice():
    """conf/method/*.yaml's world defaults are results/tune_on_proxy/tuning.json's: a config
    edited without re-tuning (or a re-tuning not copied into the configs) fails here."""
    from benchmark.adapt.dpagg_ti import default_radius
    from benchmark.models.backbone import load_backbone
    from benchmark.config import ModelConfig, default_config
    from tests.helpers import REPO, compose

    tuned = json.loads((REPO / "results" / "tune_on_proxy" / "tuning.json").read_text())
    assert tuned["dataset"] == "tiny_proxy_style"
    assert set(tuned["defaults"]) == {"ti", "dpagg_ti", "dpsgd_ti", "dpsgd_lora"}
    for method, entry in tuned["defaults"].items():
        cfg = compose([f"method={method}", "model=tiny"]).method
        for knob, value in entry["knobs"].items():
            key = knob.removeprefix("method.")
            have = cfg[key]
            if key == "clip_radius" and have is None:  # null: the model's default R, as DPAggTI resolves it
                have = default_radius(load_backbone(default_config(ModelConfig, "model=tiny")))
            assert have == pytest.approx(value, rel=1e-3), f"conf/method/{method}.yaml: {key} is {have}, tuned {value}"
