"""Trade-off areas of mitigation methods (benchmark.report.tradeoff)."""

import json

import pytest

from benchmark.report.synthetic import synthetic_metrics
from benchmark.report.tradeoff import frontier_area, main, tradeoff_areas


def _job(root, name, guidance, seed, clip, copied):
    m = synthetic_metrics("none", float("inf"), seed)
    m.update({"guidance": guidance, "eval/memorized_clip_score": clip, "eval/memorized_fraction_copied": copied})
    (root / name).mkdir(parents=True)
    (root / name / "metrics.json").write_text(json.dumps(m))


def test_area_is_the_step_frontier_by_hand():
    # From (70, 1.0): 0.5 removed at cost 10, everything at cost 30; over X = 30 that is
    # 0.5 * (30 - 10) = 10 of the ideal 30.
    assert frontier_area((70, 1.0), [(40, 0.0), (60, 0.5)], 30) == pytest.approx(10 / 30)
    # A point costing more than X adds nothing; one with better alignment counts at cost 0.
    assert frontier_area((70, 1.0), [(60, 0.5), (20, 0.0)], 30) == pytest.approx(10 / 30)
    assert frontier_area((70, 0.8), [(75, 0.4)], 30) == pytest.approx(0.5)
    # A knob level that copies more than no mitigation removes nothing.
    assert frontier_area((70, 0.5), [(60, 0.9)], 30) == 0.0


def test_areas_per_seed_and_dominance(tmp_path):
    for seed, c0 in ((0, 70.0), (1, 72.0)):
        _job(tmp_path, f"n{seed}", "none", seed, c0, 1.0)
        _job(tmp_path, f"a{seed}a", "pe", seed, c0 - 10, 0.5)
        _job(tmp_path, f"a{seed}b", "pe", seed, c0 - 30, 0.0)
        _job(tmp_path, f"b{seed}a", "prss", seed, c0 - 5, 0.9)
        _job(tmp_path, f"b{seed}b", "prss", seed, c0 - 20, 0.2)
    table = tradeoff_areas(tmp_path, 30)
    assert table["pe"]["areas"] == {0: pytest.approx(1 / 3), 1: pytest.approx(1 / 3)}
    assert table["prss"]["areas"][0] == pytest.approx((0.1 * 15 + 0.8 * 10) / 30)
    assert table["pe"]["dominates"] == ["prss"] and table["prss"]["dominates"] == []
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "| pe | 2 | 2 | 0.333 ± 0.000 |" in (tmp_path / "out" / "tradeoff.md").read_text()


def test_a_sweep_without_the_no_mitigation_job_is_an_error(tmp_path, capsys):
    _job(tmp_path, "a", "pe", 0, 60.0, 0.5)
    assert main([str(tmp_path)]) == 2
    assert "no finished guidance=none job" in capsys.readouterr().out
