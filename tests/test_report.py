"""The sweep report: numbers equal the per-job metrics.json values; bad input never crashes it."""

import csv
import math
import statistics
import subprocess
import sys
import time

import pytest

from benchmark.report.report import main, make_report
from benchmark.report.synthetic import make_synthetic_sweep, write_job, synthetic_metrics
from benchmark.report.sweep import summarize


def _csv_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _eps(text):
    return math.inf if text == "inf" else float(text)


def test_report_numbers_equal_the_jobs_metrics(tmp_path):
    jobs = make_synthetic_sweep(tmp_path, methods=("dpagg_ti", "dpsgd_ti"), epsilons=(1.0, 4.0, math.inf),
                                seeds=(0, 1, 2), mitigation={"gni": (0.1, 0.3)})
    summary, paths = make_report(tmp_path)
    rows = _csv_rows(paths["csv"])
    assert len(rows) == 2 * 3 + 2 and summary.num_jobs == len(jobs)
    for row in rows:
        knob = row["guidance.scale"]
        mine = [j for j in jobs if j["method"] == row["method"] and j["guidance"] == row["guidance"]
                and j["privacy/target_epsilon"] == _eps(row["epsilon"]) and str(j.get("config/guidance/scale", "")) == knob]
        assert sorted(row["seeds"].split()) == ["0", "1", "2"] and int(row["n_seeds"]) == 3
        for metric in ("eval/fid", "eval/clip_score", "eval/private_style_rate", "time/total_s"):
            values = [j[metric] for j in mine]
            assert float(row[f"{metric}_mean"]) == pytest.approx(statistics.fmean(values), rel=1e-12)
            assert float(row[f"{metric}_std"]) == pytest.approx(statistics.stdev(values), rel=1e-12)
    md = paths["md"].read_text()
    assert "| none | gni | inf | 0.1 |" in md and "± " in md
    assert paths["utility"].stat().st_size > 0 and paths["memorization"].stat().st_size > 0
    assert summary.knob_columns == ["guidance.scale"]  # the guidance's name is a column of its own, not a knob


def test_knobs_key_rows_and_a_single_seed_has_no_std(tmp_path):
    for num, bound in enumerate(("clip", "normalize")):
        write_job(tmp_path, num, synthetic_metrics("dpagg_ti", 2.0, 0, {"method.bound": bound}))
    summary = summarize(tmp_path)
    assert [r.knobs for r in summary.rows] == [{"method.bound": "clip"}, {"method.bound": "normalize"}]
    assert all(math.isnan(r.std("eval/fid")) for r in summary.rows)


def test_replicate_keys_average_over_mechanism_draws_instead_of_keying_rows(tmp_path):
    jobs = []
    for num, draw in enumerate((0, 1, 2)):  # one seed, three noise draws of the same release
        jobs.append(synthetic_metrics("dpagg_ti", 2.0, 0, {"method.mechanism_seed": draw}))
        write_job(tmp_path, num, jobs[-1])
    assert [r.knobs for r in summarize(tmp_path).rows] == [{"method.mechanism_seed": d} for d in (0, 1, 2)]
    (row,) = summarize(tmp_path, replicates=["seed", "method.mechanism_seed"]).rows
    assert row.knobs == {} and row.seeds == ["0/0", "0/1", "0/2"]
    assert row.mean("eval/fid") == pytest.approx(statistics.fmean(j["eval/fid"] for j in jobs), rel=1e-12)
    assert row.std("eval/fid") == pytest.approx(statistics.stdev(j["eval/fid"] for j in jobs), rel=1e-12)


def test_corrupt_and_foreign_metrics_are_skipped_with_a_warning_naming_them(tmp_path, capsys):
    make_synthetic_sweep(tmp_path, methods=("dpagg_ti",), epsilons=(1.0,), seeds=(0, 1))
    bad = tmp_path / "9_broken" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text('{"method": "dpagg_ti", "eval/fid": 1')  # a truncated write
    foreign = tmp_path / "10_other" / "metrics.json"
    foreign.parent.mkdir()
    foreign.write_text("[1, 2]")
    assert main([str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert str(bad) in err and str(foreign) in err
    rows = _csv_rows(tmp_path / "summary.csv")
    assert len(rows) == 1 and rows[0]["n_seeds"] == "2"
    assert str(bad) in (tmp_path / "summary.md").read_text()


def test_a_job_present_twice_counts_once(tmp_path):
    job = synthetic_metrics("dpagg_ti", 1.0, 0)
    write_job(tmp_path, 0, job)
    newer = dict(job, **{"eval/fid": 12.5})
    time.sleep(0.01)
    write_job(tmp_path / "rerun", 0, newer)
    summary = summarize(tmp_path)
    assert len(summary.rows) == 1 and summary.rows[0].seeds == [0]
    assert summary.rows[0].mean("eval/fid") == 12.5
    assert any("counted once" in s for s in summary.skipped)


def test_empty_sweep_directory_gives_an_empty_report_not_a_crash(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    assert "no finished runs" in capsys.readouterr().err
    assert "No finished runs" in (tmp_path / "summary.md").read_text()
    assert main([str(tmp_path / "missing")]) == 2


def test_memorization_plot_is_skipped_with_a_note_when_no_run_reports_it(tmp_path):
    make_synthetic_sweep(tmp_path, methods=("dpagg_ti",), epsilons=(1.0, math.inf), seeds=(0,))
    _, paths = make_report(tmp_path)
    assert "memorization" not in paths and not (tmp_path / "memorization_vs_alignment.png").exists()
    assert "memorization vs eval/clip_score: skipped" in paths["md"].read_text()


def test_memorization_metric_names_are_configurable(tmp_path):
    job = synthetic_metrics("pe", math.inf, 0, {"method.strength": 0.2})
    job["memorization/my_score"] = 0.3
    write_job(tmp_path, 0, job)
    _, paths = make_report(tmp_path, memorization_metrics=["memorization/my_score"])
    assert "memorization" in paths and "memorization/my_score" in paths["md"].read_text()
    # Only epsilon = inf in the sweep: no privacy-utility plot, and the report says why.
    assert "utility" not in paths and "every run is at epsilon = inf" in paths["md"].read_text()


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_report_of_a_100_job_sweep_renders_in_under_10_seconds(tmp_path):
    make_synthetic_sweep(tmp_path, methods=("dpagg_ti", "dpsgd_ti", "dpsgd_lora"), epsilons=(0.5, 1, 2, 4, 8, math.inf),
                         seeds=(0, 1, 2, 3, 4), mitigation={"gni": (0.1, 0.2)}, images_per_job=32)  # 90 + 10 jobs
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "benchmark.report", str(tmp_path)], capture_output=True, text=True,
                         timeout=60)
    seconds = time.perf_counter() - start
    assert res.returncode == 0, res.stderr
    assert "100 jobs" in res.stdout and (tmp_path / "report.html").stat().st_size > 0
    assert seconds <= 10, seconds


def test_guidance_keys_rows_and_knobs_are_found_per_method_and_guidance(tmp_path):
    jobs = [synthetic_metrics("none", math.inf, 0, {"guidance.lambda_ss": lam}, guidance="prss") for lam in (1, 2)]
    jobs += [synthetic_metrics("none", math.inf, 0, {"guidance.k": 4}, guidance="rna"),
             synthetic_metrics("none", math.inf, 0, guidance="none")]
    for num, job in enumerate(jobs):
        write_job(tmp_path, num, job)
    rows = summarize(tmp_path).rows
    assert [(r.method, r.guidance, r.knobs) for r in rows] == [
        ("none", "none", {}), ("none", "prss", {"guidance.lambda_ss": 1}), ("none", "prss", {"guidance.lambda_ss": 2}),
        ("none", "rna", {})]  # rna's k does not vary between its own jobs: not a knob
    assert rows[1].label == "none + prss (guidance.lambda_ss=1)" and rows[0].label == "none"


def test_main_table_columns_and_directions_come_from_the_metric_declarations(tmp_path):
    from benchmark.metrics.catalog import declared_keys

    jobs = make_synthetic_sweep(tmp_path, methods=("dpagg_ti",), epsilons=(1.0,), seeds=(0,),
                                mitigation={"prss": (0.1,)})
    jobs[-1].update({"eval/detection_auc": 0.8, "eval/control_trigger_fraction": 0.1, "eval/trigger_fraction": 0.4})
    write_job(tmp_path, len(jobs) - 1, jobs[-1])
    _, paths = make_report(tmp_path)
    md = paths["md"].read_text()
    main = md.split("## Main metrics")[1].split("## Every metric")[0]
    header = main.strip().splitlines()[0]
    # Declared keys with a direction, in declaration order; lower-is-better marked ↓, higher ↑.
    assert header.index("eval/fid ↓") < header.index("eval/clip_score ↑") < header.index(
        "eval/memorized_fraction_copied ↓") < header.index("eval/detection_auc ↑")
    assert "eval/control_trigger_fraction ↓" in header
    assert "eval/trigger_fraction" not in header and "eval/num_images" not in header  # descriptive: not headline
    every = md.split("## Every metric")[1].strip().splitlines()[0]
    assert " eval/trigger_fraction |" in every and " eval/fid ↓ |" in every  # all metrics there, arrows where declared
    keys = declared_keys()
    assert all(keys[m.split(" ")[0]].higher_is_better is not None
               for m in header.strip("| ").split(" | ")[4:] if m.startswith("eval/"))


def test_every_metric_name_the_report_defaults_to_is_declared():
    from benchmark.metrics.catalog import declared_keys
    from benchmark.report.plots import DEFAULT_ALIGNMENT_METRIC, DEFAULT_MEMORIZATION_METRICS, DEFAULT_UTILITY_METRICS

    names = [*DEFAULT_UTILITY_METRICS, *DEFAULT_MEMORIZATION_METRICS, *DEFAULT_ALIGNMENT_METRIC.split(",")]
    assert not [n for n in names if n not in declared_keys()]


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_a_sweep_over_the_private_set_size_gets_the_n_axis_plot(tmp_path):
    num = 0
    for n in (8, 16, 32):
        for seed in (0, 1):
            write_job(tmp_path, num, synthetic_metrics("dpagg_ti", 4.0, seed, {"dataset.world.num_adapt": n}))
            num += 1
    summary, paths = make_report(tmp_path)
    assert summary.knob_columns == ["dataset.world.num_adapt"] and len(summary.rows) == 3
    assert paths["n"].name == "utility_vs_n.png" and paths["n"].stat().st_size > 0
    assert 'src="utility_vs_n.png"' in paths["html"].read_text()
    # Without a size axis the plot is skipped, and the report says why.
    write_job(tmp_path / "other", 0, synthetic_metrics("dpagg_ti", 4.0, 0))
    _, paths = make_report(tmp_path / "other")
    assert "n" not in paths and "does not vary the adaptation set's size" in paths["md"].read_text()
