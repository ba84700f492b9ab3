"""Launcher presets, the missing-plugin error, GPU leases, knob levels, device checks."""

import importlib.util
import os
import subprocess
import sys

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from benchmark.config import ConfigError, validate_config
from benchmark.launch import apply_knob_level, gpu_lease, requested_launcher, sweep_group
from tests.helpers import CONF, REPO, SMOKE, compose


def _compose_with_hydra(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("name,target", [
    ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ("submitit_local", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"),
])
def test_launcher_presets_compose(name, target):
    cfg = _compose_with_hydra([f"hydra/launcher={name}", "strategy=ddp_multinode"])
    assert cfg.hydra.launcher._target_ == target
    if name == "submitit_slurm":  # one task per GPU, nodes from the strategy
        assert cfg.hydra.launcher.tasks_per_node == cfg.strategy.devices == 4
        assert cfg.hydra.launcher.nodes == 2 and cfg.hydra.launcher.gpus_per_node == 4


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


@pytest.mark.skipif(_installed("hydra_plugins.hydra_joblib_launcher"), reason="the joblib plugin is installed here")
def test_missing_launcher_plugin_says_which_extra_to_install(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "benchmark", "-m", "experiment=smoke", "hydra/launcher=joblib",
                          f"hydra.sweep.dir={tmp_path}"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2
    assert "pip install -e '.[joblib]'" in res.stderr and "hydra-joblib-launcher" in res.stderr
    assert not list(tmp_path.rglob("metrics.json"))


def test_requested_launcher_and_sweep_group():
    assert requested_launcher(["-m", "seed=0,1", "hydra/launcher=submitit_slurm"]) == "submitit_slurm"
    assert requested_launcher(["seed=0"]) is None
    assert sweep_group("outputs/sweeps/2026-11-22/10-00-00.123") == "sweep-2026-11-22_10-00-00.123"
    assert sweep_group("/scratch/me/dpagg_vs_dpsgd") == "sweep-me_dpagg_vs_dpsgd"


def test_gpu_leases_give_parallel_jobs_different_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHMARK_GPU_LOCKS", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with gpu_lease([3, 5]) as first:
        assert os.environ["CUDA_VISIBLE_DEVICES"] == str(first)
        # Another job (process) of the sweep, while the first one holds its GPU:
        code = ("import os; from benchmark.launch import gpu_lease\n"
                "with gpu_lease([3, 5]) as g: print(g, os.environ['CUDA_VISIBLE_DEVICES'])")
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                             capture_output=True, text=True, timeout=60).stdout.split()
        assert out == ["5", "5"] and first == 3
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with gpu_lease(None) as none:
        assert none is None


def test_knob_levels_set_each_methods_own_knob():
    base = compose(SMOKE + ["method=dpagg_ti", "+knob_level=1",
                            "+sweep_knobs={dpagg_ti: {bound: [normalize, clip]}, none: {}}"])
    assert apply_knob_level(base) and base.method.bound == "clip"
    past_end = compose(SMOKE + ["method=dpagg_ti", "+knob_level=2", "+sweep_knobs={dpagg_ti: {bound: [a, b]}}"])
    assert not apply_knob_level(past_end)
    no_knob = compose(SMOKE + ["method=none", "+knob_level=1", "+sweep_knobs={dpagg_ti: {bound: [a, b]}}"])
    assert not apply_knob_level(no_knob)
    no_knob0 = compose(SMOKE + ["method=none", "+knob_level=0", "+sweep_knobs={dpagg_ti: {bound: [a, b]}}"])
    assert apply_knob_level(no_knob0)


def test_experiments_are_multiruns_with_a_fixed_sweep_dir_and_group():
    for name in ("dpagg_vs_dpsgd", "memorization_tradeoff"):
        cfg = _compose_with_hydra([f"experiment={name}"])
        assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
        assert cfg.hydra.sweep.dir == f"outputs/sweeps/{name}" and cfg.group == name
        assert "seed" in cfg.hydra.sweeper.params and "method" in cfg.hydra.sweeper.params


@pytest.mark.skipif(__import__("torch").cuda.device_count() >= 2, reason="this machine has 2 GPUs")
def test_ddp_with_more_gpus_than_exist_names_strategy_devices():
    with pytest.raises(ConfigError, match="strategy.devices"):
        validate_config(compose(SMOKE + ["strategy=ddp"]))
    validate_config(compose(SMOKE + ["strategy=ddp", "strategy.accelerator=cpu"]))  # CPU processes are fine


def test_wandb_run_of_a_sweep_job_has_group_job_type_tags_and_summaries(tmp_path, monkeypatch):
    from benchmark.config import LoggerConfig
    from benchmark.lightning import factories

    defined = {}

    class Spy:
        def define_metric(self, name, summary=None):
            defined[name] = summary

    factories.define_summary_metrics(Spy())
    assert defined["eval/fid"] == "min" and defined["eval/clip_score"] == "max"
    assert defined["eval/accuracy_*"] == "max" and defined["eval/memorized_fraction_copied"] == "min"

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    logger = factories.make_logger(LoggerConfig(kind="wandb", mode="offline"), tmp_path, "r", "dpagg_vs_dpsgd",
                                   ["method:dpagg_ti", "dataset:tiny_style", "epsilon:1"], {"seed": 0},
                                   job_type="adapt-sample-evaluate")
    try:
        run = logger.experiment
        assert run.group == "dpagg_vs_dpsgd" and run.job_type == "adapt-sample-evaluate"
        assert {"method:dpagg_ti", "dataset:tiny_style", "epsilon:1"} <= set(run.tags)
    finally:
        import wandb

        wandb.finish()
