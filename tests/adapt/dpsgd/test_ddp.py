"""DP-SGD under Lightning DDP (2 CPU processes, gloo): one noise draw per step, ranks in lockstep."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
REPO = WORKER.parents[3]


def _launch(out: Path, world: int, kinds: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, str(WORKER), str(out), str(world), kinds], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]


@pytest.mark.slow
def test_two_process_dpsgd_ranks_agree_and_match_one_process(tmp_path, micro_world):
    _launch(tmp_path, 2, "poisson,fixed")
    _launch(tmp_path, 1, "fixed")
    r0, r1 = (torch.load(tmp_path / f"poisson_world2_rank{r}.pt") for r in (0, 1))
    # Real Poisson sampling (empty local batches likely at q = 0.125) and noise z = 1: one
    # noise draw per step, all-reduced, so both ranks apply the same update.
    assert torch.equal(r0["row"], r1["row"])
    assert (r0["row"] - r0["init"]).abs().max() > 0, "the row did not train"
    assert r0["steps"] == r1["steps"] == r0["opacus_steps"] == 4
    assert r0["empty_steps"] + r1["empty_steps"] > 0, "the empty-local-batch path was not exercised"
    # Zero noise, the same global batch of 8 split 4 + 4: identical to one process on all 8
    # (per-example clipping at C = 0.01 is active, so this checks clip-then-average).
    f0, f1, single = (torch.load(tmp_path / name) for name in
                      ("fixed_world2_rank0.pt", "fixed_world2_rank1.pt", "fixed_world1_rank0.pt"))
    assert torch.equal(f0["row"], f1["row"])
    torch.testing.assert_close(f0["row"], single["row"], atol=1e-7, rtol=0)
    assert (single["row"] - single["init"]).abs().max() > 1e-4
