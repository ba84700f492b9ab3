"""The metrics record of a job: one flat ``metrics.json``, written atomically and last.

``metrics.json`` holds the job's identity (method, guidance, dataset, model, seed), the
privacy the released artifact spent (``privacy/*``: ``valid_against`` says whom it holds
against), which keys are evaluation only (``evaluation_only``: computed from private
images beyond the release, not covered by ``privacy/*``), what the adaptation and the
guidance report about themselves (``adapt/*``, ``guidance/*``), the evaluation
(``eval/*``), the time of each stage (``time/*``), and provenance: the config hash that
resume compares, the git commit, the package versions, the world recipe and the flattened
resolved config. A run directory without ``metrics.json`` did not finish.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import benchmark.metrics.catalog  # noqa: F401  (registers the metric declarations)
from benchmark.metrics.base import declared_keys
from benchmark.resume import job_config_hash
from benchmark.utils.io import atomic_write_json
from benchmark.utils.provenance import git_commit, package_versions


def world_recipe(world_dir: Optional[Path]) -> str:
    """The recipe version of the loaded world (from its world.json), or "none" for real models."""
    if world_dir is None:
        return "none"
    return json.loads((Path(world_dir) / "world.json").read_text()).get("recipe_version", "unknown")


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"config": {"eval": {"num_images": 8}}} -> {"config/eval/num_images": 8}; lists as JSON text."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "/"))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return flat


def metrics_record(*, identity: dict, privacy: dict, target_epsilon: float, parts: list[dict], timings: dict,
                   resolved: dict, dataset_hash: str, world_dir: Optional[Path]) -> dict:
    """The flat record of one finished job.

    ``privacy`` is the adaptation's report (``epsilon``, ``delta`` and how the noise was
    calibrated): guidance is post-processing of the release, so it spends nothing and
    the record's ``privacy/*`` is the adaptation's alone. ``parts`` are the stages'
    metric dicts (``adapt/*``, ``guidance/*``, ``eval/*``), merged in order.
    """
    record = {
        **identity,
        "privacy/epsilon": privacy["epsilon"], "privacy/delta": privacy["delta"],
        "privacy/target_epsilon": target_epsilon,
        **{f"privacy/{k}": v for k, v in privacy.items() if k not in ("epsilon", "delta")},
        "privacy/valid_against": valid_against(privacy),
    }
    for part in parts:
        record.update(part)
    record["evaluation_only"] = json.dumps(evaluation_only(record))
    record.update(timings)
    record["time/total_s"] = round(sum(v for k, v in timings.items() if k != "time/total_s"), 3)
    record.update({
        "config_hash": job_config_hash(resolved), "dataset_hash": dataset_hash,
        "git_commit": git_commit(), "world_recipe": world_recipe(world_dir),
        **{f"version/{k}": v for k, v in package_versions().items()},
        **flatten({"config": resolved}),
    })
    return record


def evaluation_only(record: dict) -> list[str]:
    """The keys of ``record`` computed from private images beyond the release (FID/KID
    against the private population, similarity to the adaptation set): evaluation, not
    covered by ``privacy/*``. The rest is a function of the release and public inputs
    (for a DP release: covered by its guarantee)."""
    declared = declared_keys()
    return sorted(k for k in record if k in declared and declared[k].reads_private_data)


def valid_against(privacy: dict) -> str:
    """Whom the reported (epsilon, delta) holds against: a release whose noise comes from a
    configured ``mechanism_seed`` is not private against anyone who has that seed (it is
    in the run directory); a non-private release, against no-one."""
    if not privacy.get("private"):
        return "no-one"
    return "no-one-with-the-seed" if privacy.get("mechanism_randomness") == "seeded" else "everyone"


def public_config(resolved: dict) -> dict:
    """The resolved config as it may leave the machine (W&B): a DP mechanism's seed is withheld."""
    method = dict(resolved.get("method") or {})
    if method.get("mechanism_seed") is not None:
        method["mechanism_seed"] = "<withheld>"
    return {**resolved, "method": method}


def numeric_metrics(record: dict) -> dict:
    """What goes to the logger as metrics: numbers, without the config (logged as config) and versions."""
    return {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and not k.startswith(("config/", "version/"))}


def write_results(output_dir: Path, record: dict, resolved: dict) -> None:
    """``resolved_config.json``, then ``metrics.json`` last: its presence means the job finished."""
    atomic_write_json(Path(output_dir) / "resolved_config.json", resolved)
    atomic_write_json(Path(output_dir) / "metrics.json", record)
