"""Resume: is there already a finished result of exactly this job in its run directory?

A job's identity is the hash of its resolved config without the runtime keys (which W&B
group it logs to, whether a rerun was forced, which GPUs it may lease): starting the same
sweep again finds every finished job, and any change of a setting that can change a
result runs the job again. ``metrics.json`` is written atomically and last
(:mod:`benchmark.results`), so a job killed halfway leaves nothing that looks finished.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from benchmark.utils.provenance import config_hash

log = logging.getLogger(__name__)

# Top-level keys that do not change a job's results: left out of its config hash.
RUNTIME_KEYS = ("rerun", "group", "gpu_pool")


def job_config_hash(resolved: dict) -> str:
    """The hash written to ``metrics.json`` and compared on resume (runtime keys left out)."""
    return config_hash({k: v for k, v in resolved.items() if k not in RUNTIME_KEYS})


def finished_metrics(output_dir: Path, cfg: DictConfig) -> dict | None:
    """The metrics of a finished run of exactly this config in ``output_dir``, else None.

    A missing or unreadable ``metrics.json``, or one written for another config (its
    ``config_hash`` differs), means the job must run (and replaces the file at its end).
    """
    path = Path(output_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log.warning("%s is unreadable (%s): running the job again", path, err)
        return None
    expected = job_config_hash(OmegaConf.to_container(cfg, resolve=True))
    if not isinstance(metrics, dict) or metrics.get("config_hash") != expected:
        log.warning("%s was written for another config (hash %s, this job %s): running the job again",
                    path, metrics.get("config_hash") if isinstance(metrics, dict) else None, expected)
        return None
    return metrics
