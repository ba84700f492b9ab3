"""Data-parallel helpers for ``strategy=ddp`` / ``ddp_multinode``.

A DDP job runs as ``world_size`` copies of the same command (Lightning's subprocess
launcher re-executes it, with Hydra's run directory of the parent; on SLURM the
scheduler starts one task per device). :func:`distributed_session` starts the
processes and the process group once, before anything is loaded, so every stage of
the job (per-image TI, sampling) can shard its work across the ranks; the Trainers built
later join that group instead of launching processes again. Evaluation and the result
files are rank 0's alone.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Optional

import torch
import torch.distributed as dist

from benchmark.config import StrategyConfig

log = logging.getLogger(__name__)

_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def num_devices(devices: Any) -> int:
    """Devices per node as a count: ``2`` -> 2, ``[0, 1]`` -> 2, ``"auto"``/``-1`` -> what exists."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, int) and devices > 0:
        return devices
    return max(torch.cuda.device_count(), 1)


def process_count(strategy: StrategyConfig) -> int:
    """Processes a data-parallel run of ``strategy`` has: devices per node x nodes."""
    return num_devices(strategy.devices) * max(int(strategy.num_nodes), 1)


def is_data_parallel(strategy: StrategyConfig) -> bool:
    """True when the job runs as several processes (a ddp strategy on > 1 device in all)."""
    return str(strategy.strategy).startswith("ddp") and process_count(strategy) > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def this_rank_device(accelerator: str):
    """``devices=`` for a one-device Trainer inside a data-parallel job: this rank's own GPU."""
    if is_initialized() and accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return [int(os.environ.get("LOCAL_RANK", 0))]
    return 1


def rank_device(strategy: StrategyConfig) -> torch.device:
    """The device this rank works on: its GPU (``LOCAL_RANK``) under a GPU strategy when CUDA
    is available, else the CPU. The one place the run decides where calibration and
    evaluation run (sampling and training run where Lightning puts them: the same device).
    """
    if strategy.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def all_gather_objects(obj: Any) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in one process."""
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank; ``obj`` itself in one process."""
    if world_size() == 1:
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def leave_process_group() -> None:
    """End the data-parallel part of the job on every rank (after sampling).

    Evaluation then runs on rank 0 alone: with the group still up, torchmetrics would
    try to synchronise its states with ranks that have already finished.
    """
    if is_initialized():
        dist.barrier()  # no rank leaves while another still needs the group
        dist.destroy_process_group()


@contextmanager
def distributed_session(strategy: StrategyConfig):
    """Start the job's processes and process group (gloo on CPU, NCCL on GPUs), once.

    The process that launched the others removes the launch variables and the process
    group at the end, so the next job of a sweep run in the same process starts clean.
    """
    if not is_data_parallel(strategy) or is_initialized():
        yield
        return
    from lightning.fabric import Fabric

    launched_here = "LOCAL_RANK" not in os.environ and "SLURM_PROCID" not in os.environ
    saved = {k: os.environ.get(k) for k in _LAUNCH_ENV}
    fabric = Fabric(accelerator=strategy.accelerator, devices=strategy.devices, num_nodes=strategy.num_nodes,
                    strategy="ddp", precision=strategy.precision)
    fabric.launch()
    log.info("data-parallel job: rank %d of %d", rank(), world_size())
    try:
        yield
    finally:
        if is_initialized():  # an error before leave_process_group()
            dist.destroy_process_group()
        launcher: Optional[object] = getattr(fabric.strategy, "launcher", None)
        for proc in getattr(launcher, "procs", []) if launched_here else []:
            proc.wait()
        if launched_here:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
