"""Launcher presets, the missing-plugin error, GPU leases, experiments as multiruns, W&B summaries."""

import importlib.util
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from benchmark.config import CONFIG_DIR, compose_config
from benchmark.launch import gpu_lease, requested_launcher, sweep_group

REPO = CONFIG_DIR.parent


def _compose_with_hydra(overrides):
    return compose_config(overrides, return_hydra_config=True)


def _unresolved(node) -> dict:
    """A hydra.* node as written (its ${hydra.job.num} exists only inside a running job)."""
    return OmegaConf.to_container(node, resolve=False)


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


def test_experiments_are_multiruns_with_a_fixed_sweep_dir_and_group():
    for name in ("dpagg_vs_dpsgd", "memorization_tradeoff", "dp_by_n"):
        cfg = _compose_with_hydra([f"experiment={name}"])
        assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
        assert cfg.hydra.sweep.dir == f"outputs/sweeps/{name}" and cfg.group == name
        params = cfg.hydra.sweeper.params
        assert "seed" in params and ("method" in params or "guidance" in params)
        # The job directories name what varies, so a resumed sweep finds the same ones.
        subdir = _unresolved(cfg.hydra.sweep)["subdir"]
        assert "${guidance.name}" in subdir and "${hydra.job.num}" in subdir


def test_dp_by_n_sweeps_the_private_set_size_outermost_over_at_least_five_sizes():
    params = _compose_with_hydra(["experiment=dp_by_n"]).hydra.sweeper.params
    assert list(params)[0] == "dataset.world.num_adapt"  # small sets finish first
    sizes = [int(v) for v in str(params["dataset.world.num_adapt"]).split(",")]
    assert sizes == sorted(sizes) and {16, 32, 64, 128, 256} <= set(sizes)
    assert set(str(params["method"]).split(",")) == {"dpagg_ti", "dpsgd_ti", "dpsgd_lora", "ti"}
    assert set(str(params["privacy.epsilon"]).split(",")) == {"1", "4", "inf"}


def test_run_directories_name_the_guidance():
    cfg = _compose_with_hydra([])
    assert "${guidance.name}" in _unresolved(cfg.hydra.run)["dir"]
    assert "${guidance.name}" in _unresolved(cfg.hydra.sweep)["subdir"]
