"""Data-parallel jobs (strategy=ddp, 2 CPU processes over gloo) equal one-process jobs.

Per-image TI shards the images across the ranks and gathers the embeddings before the
one aggregation; sampling shards the (prompt, seed) items and gathers the images;
metrics.json is written once, by rank 0.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.helpers import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
DDP = ["strategy=ddp", "strategy.accelerator=cpu", "strategy.devices=2", "strategy.precision=32-true"]


def _job(out: Path, args: list[str]) -> dict:
    res = subprocess.run([sys.executable, "-m", "benchmark", "experiment=smoke", *args, f"hydra.run.dir={out}"],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def _images(out: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((out / "images").glob("*.png"))]


@pytest.mark.slow
def test_two_process_per_image_ti_gives_the_embeddings_of_one_process(tmp_path, micro_world):
    common = ["method=dpagg_ti", "method.max_steps=3", "method.mechanism_seed=0", "privacy=dp", "privacy.epsilon=2"]
    one = _job(tmp_path / "one", common + [f"method.cache_dir={tmp_path / 'cache1'}"])
    two = _job(tmp_path / "two", common + DDP + [f"method.cache_dir={tmp_path / 'cache2'}"])
    assert (tmp_path / "two" / "train_ddp_process_1.log").is_file()  # a second rank ran
    # The private per-image embeddings (test-only look into the owner-only caches).
    [c1], [c2] = (list((tmp_path / c).glob("*.safetensors")) for c in ("cache1", "cache2"))
    rows1, rows2 = load_file(c1)["embeddings"], load_file(c2)["embeddings"]
    assert rows1.shape == rows2.shape == (8, rows1.shape[1])
    torch.testing.assert_close(rows2, rows1, rtol=0, atol=1e-6)  # batched kernels round differently
    # One aggregation, one release (rank 0's noise, here seeded), same everywhere.
    r1 = load_file(tmp_path / "one" / "learned_embeds.safetensors")["<S*>"]
    r2 = load_file(tmp_path / "two" / "learned_embeds.safetensors")["<S*>"]
    torch.testing.assert_close(r2, r1, rtol=0, atol=1e-6)
    assert one["privacy/sigma"] == two["privacy/sigma"] and two["eval/num_images"] == 8
    assert len(_images(tmp_path / "two")) == 8


@pytest.mark.slow
def test_distributed_sampling_gives_the_images_of_one_process(tmp_path, micro_world):
    common = ["method=none", "eval.num_images=6", "eval.sampler.batch_size=1", "seed=2"]
    one = _job(tmp_path / "one", common)
    two = _job(tmp_path / "two", common + DDP)
    a, b = _images(tmp_path / "one"), _images(tmp_path / "two")
    assert len(a) == len(b) == 6
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # each image has its own seed
    for key in ("eval/fid", "eval/clip_score", "eval/accuracy_shape"):
        assert two[key] == pytest.approx(one[key], rel=1e-6)


@pytest.mark.slow
def test_data_parallel_job_inside_an_experiment_multirun(tmp_path, micro_world):
    """Lightning re-runs the command for rank 1: it must run this job, not the sweep again."""
    sweep = tmp_path / "sweep"
    res = subprocess.run([sys.executable, "-m", "benchmark", "experiment=dpagg_vs_dpsgd", "model=micro", "method=none",
                          "privacy.epsilon=inf", "seed=0", "logger=none", "eval.num_images=4", "eval.kid_subset_size=4",
                          *DDP, f"hydra.sweep.dir={sweep}"], cwd=REPO, env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    [job] = [p.parent for p in sweep.rglob("metrics.json")]
    assert job.parent == sweep and (job / "train_ddp_process_1.log").is_file()
    assert [p.parent for p in sweep.rglob("multirun.yaml")] == [sweep]
    assert len(_images(job)) == 4
