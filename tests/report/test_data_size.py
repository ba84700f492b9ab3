"""The private images each DP method needs (benchmark.report.data_size, n_needed.md)."""

import math

import pytest

from benchmark.report.data_size import smallest_n, write_n_needed
from benchmark.report.sweep import summarize
from benchmark.report.synthetic import synthetic_metrics, write_job

# rate[(method, epsilon)] = style rate at n = 16, 32, 64
RATES = {
    ("dpagg_ti", 1.0): (0.1, 0.3, 0.5), ("dpagg_ti", math.inf): (0.4, 0.5, 0.6),
    ("dpsgd_ti", 1.0): (0.0, 0.0, 0.1), ("dpsgd_ti", math.inf): (0.9, 0.0, 0.9),
}


def _sweep(tmp_path):
    num = 0
    for (method, eps), rates in RATES.items():
        for n, rate in zip((16, 32, 64), rates):
            m = synthetic_metrics(method, eps, 0, {"dataset.world.num_adapt": n})
            m["eval/private_style_rate"] = rate
            write_job(tmp_path, num, m)
            num += 1
    return summarize(tmp_path)


def test_the_smallest_n_is_the_first_reaching_the_fraction_of_the_own_inf_rate(tmp_path):
    table = smallest_n(_sweep(tmp_path))
    assert set(table) == {("dpagg_ti", 1.0), ("dpsgd_ti", 1.0)}  # no row for epsilon = inf itself
    agg = table[("dpagg_ti", 1.0)]
    assert agg["ratios"] == pytest.approx({16.0: 0.25, 32.0: 0.6, 64.0: 0.5 / 0.6})
    assert agg["n"] == 64.0  # 0.5 / 0.6 = 0.83 >= 0.8; 0.6 at n = 32 is not
    sgd = table[("dpsgd_ti", 1.0)]
    assert 32.0 not in sgd["ratios"]  # its inf rate is 0 there: no ratio
    assert sgd["n"] is None
    assert smallest_n(_sweep(tmp_path / "again"), fraction=0.25)[("dpagg_ti", 1.0)]["n"] == 16.0


def test_n_needed_md_names_the_n_and_the_other_methods_there(tmp_path):
    path = write_n_needed(_sweep(tmp_path / "sweep"), tmp_path)
    text = path.read_text()
    assert "| dpagg_ti | 1 | 0.10 (0.25) | 0.30 (0.60) | 0.50 (0.83) | 64 |" in text
    assert "| dpsgd_ti | 1 | 0.00 (0.00) | 0.00 | 0.10 (0.11) | not reached |" in text
    assert "dpagg_ti at epsilon 1 reaches 0.8 of its epsilon = inf rate at n = 64; there: dpsgd_ti 0.10." in text


def test_no_file_without_a_size_axis(tmp_path):
    write_job(tmp_path / "sweep", 0, synthetic_metrics("dpagg_ti", 1.0, 0))
    assert write_n_needed(summarize(tmp_path / "sweep"), tmp_path) is None
    assert not (tmp_path / "n_needed.md").exists()
