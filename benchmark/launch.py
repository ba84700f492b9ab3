"""What the command line needs around a job of a sweep: launcher plugins, sweep names, GPUs.

- Hydra's launcher plugins are optional extras; asking for one that is not installed
  fails with the ``pip install`` line, not with Hydra's "Could not find 'hydra/launcher/..."
  (:func:`check_launcher_plugin`).
- Parallel jobs on one machine (``hydra/launcher=joblib``) share the GPUs of
  ``gpu_pool``: each job leases one free GPU with an exclusive file lock for its whole
  lifetime and sees only it (``CUDA_VISIBLE_DEVICES``) (:func:`gpu_lease`). Leasing by
  lock rather than by job number means a long job never shares its GPU with the next
  job that a finished worker picks up.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Sequence

log = logging.getLogger(__name__)

# hydra/launcher option -> (module the plugin installs, extra of this package that installs it)
LAUNCHER_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "joblib"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}


class LauncherPluginMissing(RuntimeError):
    pass


def requested_launcher(argv: Sequence[str]) -> Optional[str]:
    """The ``hydra/launcher=<name>`` option on the command line, if any."""
    for arg in argv:
        match = re.fullmatch(r"(?:override\s+)?hydra/launcher=(\S+)", arg.strip())
        if match:
            return match.group(1)
    return None


def check_launcher_plugin(argv: Sequence[str]) -> None:
    """Raise :class:`LauncherPluginMissing` naming the extra to install when the plugin is absent."""
    name = requested_launcher(argv)
    if name not in LAUNCHER_PLUGINS:
        return
    module, extra = LAUNCHER_PLUGINS[name]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise LauncherPluginMissing(
            f"hydra/launcher={name} needs the Hydra launcher plugin {module.split('.')[-1].replace('_', '-')}, "
            f"which is not installed: pip install -e '.[{extra}]' (or pip install 'dp-diffusion-bench[{extra}]')")


def sweep_group(sweep_dir: str) -> str:
    """A W&B group name for an ad-hoc sweep: its directory below ``sweeps/`` (or its last two parts)."""
    parts = Path(sweep_dir).parts
    if "sweeps" in parts:
        tail = parts[parts.index("sweeps") + 1:]
    else:
        tail = parts[-2:]
    return "sweep-" + "_".join(tail) if tail else "sweep"


def _lock_dir() -> Path:
    path = Path(os.environ.get("BENCHMARK_GPU_LOCKS", Path(tempfile.gettempdir()) / "dp-diffusion-bench-gpus"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def gpu_lease(pool: Optional[Sequence[int]], poll_s: float = 2.0):
    """Hold one free GPU of ``pool`` for the block (``CUDA_VISIBLE_DEVICES`` set to it).

    ``pool`` None or empty: nothing is assigned. Waits while every GPU is leased. Locks
    are released when the process exits, even if it is killed.
    """
    if not pool:
        yield None
        return
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    waited = False
    while True:
        for gpu in pool:
            handle = open(_lock_dir() / f"gpu-{gpu}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
            log.info("job leased GPU %s (CUDA_VISIBLE_DEVICES=%s)", gpu, gpu)
            try:
                yield gpu
            finally:
                if previous is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = previous
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if not waited:
            log.info("all GPUs of gpu_pool=%s are leased; waiting", list(pool))
            waited = True
        time.sleep(poll_s)

