"""The job directories of a sweep that did not give a result, and why; a run's files.

A finished job has a readable ``metrics.json`` (:mod:`benchmark.report.sweep`). Every
other job directory (one with ``.hydra/``, ``images/`` or ``resolved_config.json``) is
listed with the reason the report can tell from its files:

- ``skipped``: a ``skipped.json`` marker (``{"reason": ...}``) when the job wrote one;
  else a guidance without a preset at its strength (the job's ``.hydra/config.yaml``),
  or a non-private method at a finite ``privacy.epsilon`` (what ``benchmark.cli`` skips;
  whether a method is private is read from its finished jobs' ``privacy/private``, and
  only when none finished from its class, which imports model code);
- ``failed``: the job's Hydra log (``*.log``) holds an ``ERROR`` line (its reason) or a
  traceback;
- ``half-written``: images but no ``metrics.json`` (killed during evaluation), or PNGs
  without ``images/index.jsonl`` (killed during sampling);
- ``unfinished``: no ``metrics.json`` and nothing else to tell (killed early, or running).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from benchmark.report.sweep import Job

INDEX_FILE = "index.jsonl"  # benchmark.sampling.generate.INDEX_FILE (that module imports torch)
SKIP_MARKER = "skipped.json"
CONFIG_FILES = (".hydra/config.yaml", "resolved_config.json")


@dataclass(frozen=True)
class Problem:
    """A job directory without a result: ``status`` is skipped, failed, half-written or unfinished."""

    run_dir: Path
    status: str
    reason: str


def config_file(run_dir: Path) -> Optional[Path]:
    """The run's resolved config: ``.hydra/config.yaml``, else ``resolved_config.json``."""
    return next((Path(run_dir) / f for f in CONFIG_FILES if (Path(run_dir) / f).is_file()), None)


def read_index(run_dir: Path) -> tuple[list[dict], Optional[str]]:
    """The rows of ``images/index.jsonl`` that name an existing image, and a warning if any was bad."""
    path = Path(run_dir) / "images" / INDEX_FILE
    if not path.is_file():
        return [], None
    rows, bad = [], 0
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        return [], f"{path}: unreadable ({type(err).__name__})"
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("file"), str):
                raise ValueError("no 'file'")
        except ValueError:
            bad += 1
            continue
        rows.append(row)
    missing = [r for r in rows if not (path.parent / r["file"]).is_file()]
    rows = [r for r in rows if r not in missing]
    problems = [f"{bad} malformed lines" if bad else "", f"{len(missing)} missing images" if missing else ""]
    note = ", ".join(p for p in problems if p)
    return rows, (f"{path}: {note}" if note else None)


def _load_config(run_dir: Path):
    """The job's composed config (OmegaConf), or None if it has none readable."""
    path = config_file(run_dir)
    if path is None:
        return None
    try:
        from omegaconf import OmegaConf

        return OmegaConf.load(path) if path.suffix == ".yaml" else OmegaConf.create(json.loads(path.read_text()))
    except Exception:  # a half-written or hand-edited file: the job is listed, its reason is generic
        return None


def _is_private(cfg) -> Optional[bool]:
    """Whether the job's adaptation method is DP (imports its class: only for finite-epsilon jobs)."""
    try:
        from hydra.utils import get_class

        return bool(getattr(get_class(cfg.method._target_), "private", False))
    except Exception:
        return None


def _skip_reason(run_dir: Path, cfg, private: dict[str, bool]) -> Optional[str]:
    marker = run_dir / SKIP_MARKER
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text()).get("reason", "skipped"))
        except (OSError, ValueError, AttributeError):
            return "skipped (unreadable skipped.json)"
    if cfg is None:
        return None
    try:
        from benchmark.config.strength import missing_preset

        reason = missing_preset(cfg)
        if reason:
            return reason
        epsilon = float(cfg.privacy.epsilon)
    except Exception:
        return None
    method = cfg.get("method")
    if not math.isfinite(epsilon) or method is None:
        return None
    is_private = private[method.name] if method.get("name") in private else _is_private(cfg)
    if is_private is False:
        return (f"method {cfg.method.name} is not differentially private; it runs only at "
                f"privacy.epsilon=inf, not {cfg.privacy.epsilon}")
    return None


def _failure(run_dir: Path) -> Optional[str]:
    """The first ERROR line of the job's Hydra log, or the last line of a traceback in it."""
    for log_file in sorted(run_dir.glob("*.log")):
        try:
            lines = log_file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        errors = [ln for ln in lines if "ERROR" in ln]
        if errors:
            return errors[0].split("ERROR", 1)[1].strip(" -:]") or errors[0]
        if any(ln.startswith("Traceback") for ln in lines):
            return next((ln for ln in reversed(lines) if ln.strip()), "traceback in the log")
    return None


def diagnose(run_dir: Path, private: Optional[dict[str, bool]] = None) -> Problem:
    """Why ``run_dir`` has no readable result. ``private``: method name -> whether it is DP, where known."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        return Problem(run_dir, "failed", "metrics.json is unreadable or not a run's record (corrupt or half-written)")
    reason = _skip_reason(run_dir, _load_config(run_dir), private or {})
    if reason:
        return Problem(run_dir, "skipped", reason)
    reason = _failure(run_dir)
    if reason:
        return Problem(run_dir, "failed", reason)
    images = run_dir / "images"
    if images.is_dir() and any(images.glob("*.png")):
        if not (images / INDEX_FILE).is_file():
            return Problem(run_dir, "half-written", "images but no images/index.jsonl: stopped while sampling")
        return Problem(run_dir, "half-written", "images but no metrics.json: stopped while evaluating")
    return Problem(run_dir, "unfinished", "no metrics.json: stopped before sampling, or still running")


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Every directory below ``sweep_dir`` that looks like a job's (Hydra config, images or a result)."""
    found = set()
    for marker in (".hydra", "images", "resolved_config.json", "metrics.json", SKIP_MARKER):
        for path in Path(sweep_dir).rglob(marker):
            parts = path.relative_to(sweep_dir).parts[:-1]
            if any(p in ("wandb", ".hydra", "images", "report_assets") for p in parts):
                continue
            found.add(path.parent)
    return sorted(found)


def problems(sweep_dir: Path, finished: Iterable[Job]) -> list[Problem]:
    """The job directories of ``sweep_dir`` without a result among ``finished`` jobs."""
    finished = list(finished)
    done = {job.run_dir.resolve() for job in finished}
    private = {job.method: bool(job.metrics["privacy/private"]) for job in finished
               if isinstance(job.metrics.get("privacy/private"), bool)}
    sweep_dir = Path(sweep_dir)
    return [diagnose(d, private) for d in job_dirs(sweep_dir)
            if d.resolve() not in done and d.resolve() != sweep_dir.resolve()]
