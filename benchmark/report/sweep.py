"""A sweep directory -> one row per (method, guidance, epsilon, knobs): mean and std over seeds.

Method-agnostic: every job is read from its own ``metrics.json`` (flat: metrics, plus the
resolved config under ``config/...``). A row is keyed by the method, the target epsilon
the guidance method and their *knobs*: the config keys that vary between that
(method, guidance)'s jobs of the same seed (e.g. ``method.strength`` of a mitigation method, ``method.bound``), so any
sweep axis besides the seed becomes a column without the report knowing the method.
Every numeric metric is averaged over the seeds of its row (sample std, ``nan`` for a
single seed).

Bad input never stops the report: an unreadable or malformed ``metrics.json`` is
skipped with a warning naming it; a job present twice (the same method, epsilon, knobs
and seed in two run directories) counts once (the newest file), with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

log = logging.getLogger(__name__)

# Config keys that never distinguish rows: the seed axis itself, epsilon (its own column),
# runtime settings, and where things ran or were cached.
IGNORED_CONFIG_PREFIXES = (
    "config/seed", "config/group", "config/rerun", "config/gpu_pool", "config/strength/",
    "config/privacy/epsilon",
    "config/logger/", "config/strategy/", "config/method/cache_dir", "config/method/_target_",
    "config/method/name", "config/guidance/name", "config/guidance/_target_",
)
# Non-numeric or per-job bookkeeping: not averaged.
NOT_METRICS = ("seed",)


def _number(value) -> Optional[float]:
    """A metric value as a float: numbers, and the strings "inf"/"-inf"/"nan" JSON cannot hold."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "-inf", "nan", "infinity", "-infinity"):
        return float(value)
    return None


def config_key(key: str) -> str:
    """``method.bound`` or ``config/method/bound`` -> the flat metrics.json key ``config/method/bound``."""
    return "config/" + key.removeprefix("config/").replace(".", "/")


@dataclass
class Job:
    path: Path  # the metrics.json
    metrics: dict
    # Config keys whose values are repetitions of one setting (averaged over, not rows).
    replicate_keys: tuple[str, ...] = ("config/seed",)

    @property
    def method(self) -> str:
        return str(self.metrics.get("method", "?"))

    @property
    def guidance(self) -> str:
        """The guidance method ("none": plain CFG, also for records older than the guidance family)."""
        return str(self.metrics.get("guidance", self.metrics.get("config/guidance/name", "none")))

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def epsilon(self) -> float:
        for key in ("privacy/target_epsilon", "config/privacy/epsilon", "privacy/epsilon"):
            value = _number(self.metrics.get(key))
            if value is not None:
                return value
        return math.inf

    @property
    def seed(self):
        """This job's replicate: its seed, or the values of ``replicate_keys`` joined by "/"."""
        if self.replicate_keys == ("config/seed",):
            return self.metrics.get("seed", self.metrics.get("config/seed"))
        return "/".join(str(self.metrics.get(k)) for k in self.replicate_keys)


@dataclass
class Row:
    method: str
    guidance: str
    epsilon: float
    knobs: dict  # display key -> value
    jobs: list[Job] = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # metric -> (mean, std, n)

    @property
    def seeds(self) -> list:
        return [job.seed for job in self.jobs]

    def mean(self, metric: str) -> Optional[float]:
        return self.stats[metric][0] if metric in self.stats else None

    def std(self, metric: str) -> Optional[float]:
        return self.stats[metric][1] if metric in self.stats else None

    @property
    def label(self) -> str:
        knobs = ", ".join(f"{k}={v}" for k, v in self.knobs.items())
        return f"{self.name} ({knobs})" if knobs else self.name

    @property
    def name(self) -> str:
        """The method, and the guidance when it is not plain CFG: ``none + prss``."""
        return self.method if self.guidance == "none" else f"{self.method} + {self.guidance}"


@dataclass
class SweepSummary:
    sweep_dir: Path
    rows: list[Row]
    knob_columns: list[str]
    metrics: list[str]
    skipped: list[str]  # warnings: what was skipped and why
    num_jobs: int


def load_jobs(sweep_dir: Path) -> tuple[list[Job], list[str]]:
    """Every readable ``metrics.json`` below ``sweep_dir``; the rest become warnings."""
    jobs, skipped = [], []
    for path in sorted(Path(sweep_dir).rglob("metrics.json")):
        if any(part in ("wandb", ".hydra") for part in path.relative_to(sweep_dir).parts[:-1]):
            continue
        try:
            metrics = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            skipped.append(f"{path}: unreadable ({type(err).__name__}: {err})")
            continue
        if not isinstance(metrics, dict) or "method" not in metrics:
            skipped.append(f"{path}: not a run's metrics (no 'method' key)")
            continue
        jobs.append(Job(path, metrics))
    for message in skipped:
        log.warning("skipping %s", message)
    return jobs, skipped


def _display(key: str) -> str:
    return key.removeprefix("config/").replace("/", ".")


def find_knobs(jobs: Sequence[Job]) -> dict[tuple[str, str], list[str]]:
    """Per (method, guidance), the config keys that vary between its jobs of the same seed."""
    knobs: dict[tuple[str, str], list[str]] = {}
    by_method: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        by_method.setdefault((job.method, job.guidance), []).append(job)
    for method, group in by_method.items():
        keys = sorted({k for job in group for k in job.metrics if k.startswith("config/")
                       and not k.startswith(IGNORED_CONFIG_PREFIXES) and k not in job.replicate_keys})
        varying = []
        for key in keys:
            per_seed: dict = {}
            for job in group:
                per_seed.setdefault(str(job.seed), set()).add(json.dumps(job.metrics.get(key), sort_keys=True))
            if any(len(values) > 1 for values in per_seed.values()):
                varying.append(key)
        knobs[method] = varying
    return knobs


def _sort_value(value):
    number = _number(value)
    return (0, number, "") if number is not None else (1, 0.0, str(value))


def summarize(sweep_dir: Path, by: Optional[Sequence[str]] = None,
              replicates: Optional[Sequence[str]] = None) -> SweepSummary:
    """Group the sweep's jobs into rows and average every numeric metric over seeds.

    ``by``: config keys (``method.bound`` or ``config/method/bound``) to key rows on, in
    place of the knobs found automatically. ``replicates``: the config keys whose values
    are repetitions of one setting (default ``seed``); e.g. ``seed,method.mechanism_seed``
    averages DPAgg-TI over fresh noise draws as well as over seeds.
    """
    sweep_dir = Path(sweep_dir)
    jobs, skipped = load_jobs(sweep_dir)
    if replicates:
        for job in jobs:
            job.replicate_keys = tuple(config_key(k) for k in replicates)
    if by is not None:
        wanted = [config_key(k) for k in by]
        knobs = {(job.method, job.guidance): wanted for job in jobs}
    else:
        knobs = find_knobs(jobs)
    rows: dict[tuple, Row] = {}
    seen: dict[tuple, Job] = {}
    for job in sorted(jobs, key=lambda j: j.path.stat().st_mtime):
        values = {_display(k): job.metrics.get(k) for k in knobs.get((job.method, job.guidance), [])}
        key = (job.method, job.guidance, job.epsilon, json.dumps(values, sort_keys=True, default=str))
        row = rows.setdefault(key, Row(job.method, job.guidance, job.epsilon, values))
        job_key = (*key, str(job.seed))
        if job_key in seen:  # the newer file (later in mtime order) replaces the older one
            older = seen[job_key]
            skipped.append(f"{older.path}: the same job (method {job.method}, guidance {job.guidance}, "
                           f"epsilon {job.epsilon:g}, "
                           f"seed {job.seed}) as {job.path}; counted once, the newer")
            log.warning("skipping %s", skipped[-1])
            row.jobs.remove(older)
        seen[job_key] = job
        row.jobs.append(job)
    metric_names: set[str] = set()
    for row in rows.values():
        row.jobs.sort(key=lambda j: _sort_value(j.seed))
        values: dict[str, list[float]] = {}
        for job in row.jobs:
            for k, v in job.metrics.items():
                if k.startswith(("config/", "version/")) or k in NOT_METRICS:
                    continue
                number = _number(v)
                if number is not None:
                    values.setdefault(k, []).append(number)
        for k, vs in values.items():
            finite = all(math.isfinite(v) for v in vs)
            mean = statistics.fmean(vs) if finite else (vs[0] if len(set(vs)) == 1 else math.nan)
            std = statistics.stdev(vs) if len(vs) > 1 and finite else (0.0 if len(set(vs)) == 1 and len(vs) > 1
                                                                         else math.nan)
            row.stats[k] = (mean, std, len(vs))
        metric_names.update(values)
    knob_columns = sorted({k for row in rows.values() for k in row.knobs})
    ordered = sorted(rows.values(), key=lambda r: (r.method, r.guidance, [_sort_value(r.knobs.get(k)) for k in knob_columns],
                                                   r.epsilon))
    metrics = sorted(metric_names, key=lambda m: (_metric_rank(m), m))
    return SweepSummary(sweep_dir, ordered, knob_columns, metrics, skipped, sum(len(r.jobs) for r in ordered))


def _metric_rank(name: str) -> int:
    for i, prefix in enumerate(("eval/", "privacy/", "adapt/", "time/")):
        if name.startswith(prefix):
            return i
    return 9
