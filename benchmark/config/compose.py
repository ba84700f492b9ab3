"""Compose the run config outside ``@hydra.main`` (tests, scripts), and typed views of it."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Optional, TypeVar

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.config.errors import ConfigError, describe_config_error
from benchmark.config.schema import SCHEMA_PATHS
from benchmark.config.store import register_schemas

# The Hydra config tree (conf/ beside the package, as in an editable install).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"

T = TypeVar("T")


def compose_config(overrides: list[str], config_dir: Optional[Path] = None,
                   return_hydra_config: bool = False) -> DictConfig:
    """The run config ``python -m benchmark <overrides>`` would compose (without ``hydra.*``).

    A mistyped key, a wrong type or a missing option raises :class:`ConfigError` with the
    one-line message the command line prints. ``config_dir``: another config tree (tests).
    Hydra's global state is restored afterwards, so a running job may call it.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    register_schemas()
    # Called inside a running Hydra app (a job), leave that app's global state as it was.
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir or CONFIG_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(describe_config_error(err)) from err
    finally:
        restore_gh_from_backup(backup)


def to_typed(node: DictConfig, schema: type[T], key: str) -> T:
    """The dataclass instance of a composed group node; errors name ``key``.

    The node is merged onto a fresh ``schema`` (or, if composed through a subclass of it,
    onto that subclass): so a key added with ``+key=`` on the command line, or a group file
    that names no schema, is checked all the same.
    """
    composed = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    if isinstance(composed, type) and dataclasses.is_dataclass(composed) and issubclass(composed, schema):
        schema = composed
    try:
        # A plain container: merging the composed node itself would keep keys added to it.
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except OmegaConfBaseException as err:
        raise ConfigError(describe_config_error(err, prefix=key)) from None


@lru_cache(maxsize=32)
def _composed(overrides: tuple[str, ...]) -> DictConfig:
    return compose_config(list(overrides))


def default_config(schema: type[T], *overrides: str, **fields) -> T:
    """A schema's values from the YAML files, for code that needs one piece of a run config.

    ``default_config(SamplerConfig, num_inference_steps=4)`` is ``eval.sampler`` of the main
    job with one field replaced; ``default_config(ModelConfig, "model=micro")`` the micro
    world's model. The YAML stays the one source of values (schemas have no defaults).
    """
    cfg = _composed(tuple(overrides))
    path = SCHEMA_PATHS[schema]
    node = OmegaConf.select(cfg, path)
    if node is None:
        raise ConfigError(f"the composed config has no '{path}' (overrides {list(overrides)})")
    return dataclasses.replace(to_typed(node, schema, path), **fields)
