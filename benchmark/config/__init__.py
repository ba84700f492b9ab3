"""Run configuration: schemas in Hydra's ConfigStore, composition, one validator.

- :mod:`~benchmark.config.schema`: the dataclasses (no defaults: the YAML is the source);
- :mod:`~benchmark.config.store`: their registration (``<group>_schema`` names);
- :mod:`~benchmark.config.compose`: :func:`compose_config` and typed views;
- :mod:`~benchmark.config.validation`: :func:`validate_config`, every range check;
- :mod:`~benchmark.config.strength`: mitigation-strength presets of a sweep.
"""

from benchmark.config.compose import CONFIG_DIR, compose_config, default_config, to_typed
from benchmark.config.errors import ConfigError, describe_config_error
from benchmark.config.schema import (ConceptConfig, DatasetConfig, EvalConfig, LoggerConfig,
                                     MembershipInferenceConfig, ModelConfig, PrivacyConfig, RunConfig, SamplerConfig,
                                     StrategyConfig, StrengthConfig, WandbLoggerConfig, WorldSourceConfig)
from benchmark.config.validation import validate_config

__all__ = [
    "CONFIG_DIR", "ConceptConfig", "ConfigError", "DatasetConfig", "EvalConfig", "LoggerConfig",
    "MembershipInferenceConfig", "ModelConfig", "PrivacyConfig", "RunConfig", "SamplerConfig", "StrategyConfig",
    "StrengthConfig", "WandbLoggerConfig",
    "WorldSourceConfig", "compose_config", "default_config", "describe_config_error", "to_typed", "validate_config",
]
