"""Register every schema in Hydra's ConfigStore (importing this module does it).

Group files name their schema first in their defaults list
(``defaults: [model_schema, _self_]``, or a parent option that does), so Hydra merges
the YAML onto the typed node while composing: a mistyped key or a wrong type fails
composition, naming the key. Registration must precede composition: ``compose_config``
calls :func:`register_schemas`, and ``benchmark.cli`` imports this module before
``@hydra.main`` runs.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from benchmark.config.schema import (DatasetConfig, EvalConfig, LoggerConfig, ModelConfig, PrivacyConfig,
                                     StrategyConfig, StrengthConfig, WandbLoggerConfig)

# (group, schema name, dataclass): the names group files put in their defaults list.
SCHEMAS = (
    ("model", "model_schema", ModelConfig),
    ("dataset", "dataset_schema", DatasetConfig),
    ("privacy", "privacy_schema", PrivacyConfig),
    ("eval", "eval_schema", EvalConfig),
    ("strategy", "strategy_schema", StrategyConfig),
    ("logger", "logger_schema", LoggerConfig),
    ("logger", "wandb_logger_schema", WandbLoggerConfig),
    ("strength", "strength_schema", StrengthConfig),
)


def register_schemas() -> None:
    """Store every schema; idempotent (storing a name again replaces it with the same node)."""
    store = ConfigStore.instance()
    for group, name, schema in SCHEMAS:
        store.store(group=group, name=name, node=schema)


register_schemas()
