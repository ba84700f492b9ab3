"""Helpers shared by the adaptation tests: methods and run configs from the YAML, the micro world.

Methods are built from ``conf/method/<name>.yaml`` (their one source of defaults), never
from Python defaults, so a test sees exactly what ``python -m benchmark method=<name>``
would run, with the given fields replaced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hydra.utils import instantiate

from benchmark.adapt.base import RunContext
from benchmark.config import RunConfig, validate_config
from benchmark.lightning.factories import make_trainer_factory
from tests.helpers import SMOKE, compose  # noqa: F401  (re-exported)


def run_config(*overrides: str) -> RunConfig:
    """The validated config of the smoke job (micro world, 8 adaptation images) with ``overrides``."""
    return validate_config(compose(SMOKE + list(overrides)))


def method_from_yaml(name: str, **fields):
    """``conf/method/<name>.yaml`` instantiated, ``fields`` replacing its values (like ``method.<key>=``)."""
    return instantiate(compose([f"method={name}"]).method, **fields, _convert_="all")


def context(run: RunConfig, output_dir: Path, **changes) -> RunContext:
    """The RunContext ``run.py`` would give a method, writing under ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)  # run.py creates the run directory before adapting
    ctx = RunContext(output_dir, run.seed, run.privacy, run.strategy,
                     make_trainer_factory(run.strategy, None, output_dir))
    return dataclasses.replace(ctx, **changes)
