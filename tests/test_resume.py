"""Resume: a job whose metrics.json holds this config's hash is skipped; a killed sweep
started again runs only the unfinished jobs and the report has every job exactly once."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from benchmark.report.sweep import summarize
from benchmark.resume import finished_metrics
from tests.helpers import REPO, SMOKE, compose

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


def _cli(args, env=ENV, **kwargs):
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, **kwargs)


def test_finished_job_is_recognised_only_for_the_same_config(run_job, tmp_path):
    metrics, out = run_job(["method=none", "seed=3"])
    same = compose(SMOKE + ["method=none", "seed=3"])
    assert finished_metrics(out, same)["config_hash"] == metrics["config_hash"]
    # Runtime keys (W&B group, the rerun flag, GPU pool) are not part of the hash.
    assert finished_metrics(out, compose(SMOKE + ["method=none", "seed=3", "group=other", "rerun=true",
                                                  "gpu_pool=[0]"])) is not None
    assert finished_metrics(out, compose(SMOKE + ["method=none", "seed=4"])) is None
    assert finished_metrics(out, compose(SMOKE + ["method=none", "seed=3", "eval.num_images=4"])) is None
    (out / "metrics.json").write_text('{"config_hash": ')  # a torn file (not written by us: we write atomically)
    assert finished_metrics(out, same) is None


@pytest.mark.slow
def test_cli_skips_a_finished_job_and_rerun_true_forces_it(tmp_path, micro_world):
    out = tmp_path / "run"
    args = ["experiment=smoke", "method=none", f"hydra.run.dir={out}"]
    first = _cli(args)
    assert first.returncode == 0, first.stderr[-2000:]
    written = (out / "metrics.json").stat().st_mtime_ns
    second = _cli(args)
    assert second.returncode == 0 and "skipped (finished" in second.stdout
    assert (out / "metrics.json").stat().st_mtime_ns == written
    forced = _cli(args + ["rerun=true"])
    assert forced.returncode == 0 and "skipped (finished" not in forced.stdout
    assert (out / "metrics.json").stat().st_mtime_ns != written
    assert "skipped (finished" in _cli(args).stdout  # the forced run wrote the same config's hash


def quick_methods(root):
    """A config search path with short-training twins of dpagg_ti and dpsgd_ti (each method's own
    knob differs: a sweep over both cannot set one ``method.<key>``)."""
    folder = root / "conf" / "method"
    folder.mkdir(parents=True)
    (folder / "dpagg_ti_quick.yaml").write_text("defaults: [dpagg_ti, _self_]\nname: dpagg_ti\nmax_steps: 2\n")
    (folder / "dpsgd_ti_quick.yaml").write_text("defaults: [dpsgd_ti, _self_]\nname: dpsgd_ti\nepochs: 2\n")
    return f"hydra.searchpath=[file://{root / 'conf'}]"


# 2 methods x 2 epsilons.
SWEEP = ["-m", "experiment=smoke", "method=dpagg_ti_quick,dpsgd_ti_quick", "privacy=dp", "privacy.epsilon=1,inf",
         "seed=0"]


@pytest.mark.slow
def test_a_job_terminated_during_training_exits_143_and_leaves_no_metrics(tmp_path, micro_world):
    """Lightning turns SIGTERM into a SystemExit with code 0: a killed job must not look finished."""
    out, log = tmp_path / "run", tmp_path / "log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "benchmark", "model=micro", "method=ti", "method.max_steps=5000",
                                 "logger=none", f"hydra.run.dir={out}"], cwd=REPO, env=ENV, stdout=sink, stderr=sink)
        deadline = time.time() + 300
        try:
            while "steps:" not in log.read_text(errors="replace"):  # training has started
                assert proc.poll() is None and time.time() < deadline, log.read_text()[-2000:]
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 128 + signal.SIGTERM
        finally:
            proc.kill()
    assert not (out / "metrics.json").exists()
    assert "terminated (SIGTERM)" in log.read_text(errors="replace")


@pytest.mark.slow
def test_killed_multirun_started_again_runs_only_unfinished_jobs(tmp_path, micro_world):
    sweep = tmp_path / "sweep"
    args = SWEEP + [f"hydra.sweep.dir={sweep}", quick_methods(tmp_path)]
    env = {**ENV, "BENCHMARK_CACHE": str(tmp_path / "cache")}  # per-image embeddings of this test only
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    try:
        while not list(sweep.glob("*/metrics.json")):
            assert proc.poll() is None, "the sweep ended before its first job finished"
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and anything it started
        proc.wait()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    assert 1 <= len(done_before) < 4
    again = _cli(args, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("skipped (finished") == len(done_before)
    for name, mtime in done_before.items():  # finished jobs untouched
        assert (sweep / name / "metrics.json").stat().st_mtime_ns == mtime
    summary = summarize(sweep)
    keys = sorted((r.method, r.epsilon, tuple(r.seeds)) for r in summary.rows)
    assert keys == [("dpagg_ti", 1.0, (0,)), ("dpagg_ti", float("inf"), (0,)), ("dpsgd_ti", 1.0, (0,)),
                    ("dpsgd_ti", float("inf"), (0,))]
    assert summary.num_jobs == 4 and not [s for s in summary.skipped if "counted once" in s]
    for row in summary.rows:  # one seed: the row's numbers are that job's metrics.json values
        [job] = row.jobs
        saved = json.loads(job.path.read_text())
        assert row.mean("eval/fid") == saved["eval/fid"] and row.mean("eval/clip_score") == saved["eval/clip_score"]


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_sweep_skips_non_private_methods_at_a_finite_budget_but_a_single_run_refuses(tmp_path, micro_world):
    # The comparison `method=dpsgd_ti,dpagg_ti,ti privacy.epsilon=1,4,inf`: `ti` has one point.
    sweep = _cli(["-m", "experiment=smoke", "method=none", "privacy.epsilon=1,inf", f"hydra.sweep.dir={tmp_path}"])
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert "skipped (method none is not differentially private" in sweep.stdout
    assert [p.parent.name for p in tmp_path.glob("*/metrics.json")] == ["1_none_none_epsinf_s0"]
    single = _cli(["experiment=smoke", "method=none", "privacy.epsilon=1", f"hydra.run.dir={tmp_path / 'single'}"])
    assert single.returncode == 1 and "not differentially private" in single.stderr
