"""Every range check of a run config, in one place: :func:`validate_config`.

Composition has already checked keys and types against the schemas; this module checks
the values (positive counts, epsilon > 0 or inf, known choices, GPUs that exist). A
failed check raises :class:`ConfigError` naming the key. Method and guidance
hyperparameters are checked by their own classes when instantiated.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from benchmark.config.compose import to_typed
from benchmark.config.errors import ConfigError
from benchmark.config.schema import (DatasetConfig, EvalConfig, LoggerConfig, ModelConfig, PrivacyConfig, RunConfig,
                                     StrategyConfig, StrengthConfig, WandbLoggerConfig)

# benchmark.world.datasets renders these (kept here so a typo fails before any work).
WORLD_POPULATIONS = ("private_style", "proxy_style", "memorized", "local_memorized")
GROUPS = ("model", "dataset", "method", "guidance", "privacy", "eval", "strategy", "logger", "strength")
DATASET_SOURCES = ("world", "imagefolder", "hf", "memorization")
CONCEPT_KINDS = ("style", "object")
WANDB_MODES = ("online", "offline", "disabled")


def _positive(key: str, value: Any, *, integer: bool = False, allow_inf: bool = False,
              optional: bool = False) -> None:
    if value is None and optional:
        return
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    bad = math.isnan(number) or number <= 0 or (math.isinf(number) and not allow_inf)
    if integer and not bad and not float(number).is_integer():
        bad = True
    if bad:
        kind = "a positive integer" if integer else "a number > 0" + (" (or inf)" if allow_inf else "")
        raise ConfigError(f"{key} must be {kind}, got {value!r}")


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def _check_devices(strategy: StrategyConfig) -> None:
    """More GPUs asked for (per node) than this machine has is an error naming ``strategy.devices``."""
    if strategy.accelerator not in ("gpu", "cuda"):
        return
    import torch

    available = torch.cuda.device_count()
    devices = strategy.devices
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    wanted = len(devices) if isinstance(devices, (list, tuple)) else devices
    if isinstance(wanted, int) and wanted > available:
        raise ConfigError(
            f"strategy.devices={strategy.devices} asks for {wanted} GPU(s) per node but this machine has {available}"
            f"{' (no CUDA device visible)' if available == 0 else ''}; lower strategy.devices, or run data-parallel "
            "on CPU processes with strategy.accelerator=cpu")


def check_ranges(model: ModelConfig, dataset: DatasetConfig, privacy: PrivacyConfig, evaluation: EvalConfig,
                 strategy: StrategyConfig, logger: Optional[LoggerConfig] = None) -> None:
    """Raise :class:`ConfigError` for the first value out of its range, naming its key."""
    _positive("privacy.epsilon", privacy.epsilon, allow_inf=True)
    if not (isinstance(privacy.delta, float) and 0 < privacy.delta < 1):
        raise ConfigError(f"privacy.delta must be in (0, 1), got {privacy.delta!r}")
    _positive("model.resolution", model.resolution, integer=True)
    _positive("model.embedding_radius", model.embedding_radius, optional=True)
    _choice("dataset.source", dataset.source, DATASET_SOURCES)
    _choice("dataset.concept.kind", dataset.concept.kind, CONCEPT_KINDS)
    _positive("dataset.max_adapt_images", dataset.max_adapt_images, integer=True, optional=True)
    if dataset.source == "world" and dataset.world is None:
        raise ConfigError(f"dataset.world is required with dataset.source=world (dataset '{dataset.name}')")
    if dataset.world is not None:
        _positive("dataset.world.num_adapt", dataset.world.num_adapt, integer=True)
        if dataset.world.num_heldout < 0:
            raise ConfigError(f"dataset.world.num_heldout must be >= 0, got {dataset.world.num_heldout!r}")
        _choice("dataset.world.population", dataset.world.population, WORLD_POPULATIONS)
    region = dataset.copy_region
    if region is not None:
        if not (len(region) == 4 and 0 <= region[0] < region[2] <= 1 and 0 <= region[1] < region[3] <= 1):
            raise ConfigError("dataset.copy_region must be [x0, y0, x1, y1], fractions of the image with "
                              f"0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1; got {list(dataset.copy_region)!r}")
    _positive("eval.num_images", evaluation.num_images, integer=True)
    _positive("eval.images_per_prompt", evaluation.images_per_prompt, integer=True, optional=True)
    _positive("eval.kid_subset_size", evaluation.kid_subset_size, integer=True)
    _positive("eval.grid_images", evaluation.grid_images, integer=True)
    _positive("eval.sampler.num_inference_steps", evaluation.sampler.num_inference_steps, integer=True)
    _positive("eval.sampler.batch_size", evaluation.sampler.batch_size, integer=True)
    mia = evaluation.membership_inference
    if not mia.timesteps:
        raise ConfigError("eval.membership_inference.timesteps must list at least one timestep")
    for t in mia.timesteps:
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise ConfigError(f"eval.membership_inference.timesteps must be integers >= 0, got {t!r}")
    _positive("eval.membership_inference.noises_per_timestep", mia.noises_per_timestep, integer=True)
    _positive("eval.membership_inference.batch_size", mia.batch_size, integer=True)
    _positive("strategy.num_nodes", strategy.num_nodes, integer=True)
    _positive("strategy.accumulate_grad_batches", strategy.accumulate_grad_batches, integer=True)
    _positive("strategy.gradient_clip_val", strategy.gradient_clip_val, optional=True)
    _check_devices(strategy)
    if isinstance(logger, WandbLoggerConfig):
        _choice("logger.mode", logger.mode, WANDB_MODES)


def _dataset_node(node: DictConfig) -> tuple[DictConfig, tuple[str, ...]]:
    """The dataset node to type, and the key prefixes it ignores.

    Only the world source reads ``world:``. An experiment sized for the world (``smoke``
    sets ``dataset.world.num_adapt``) may still be combined with another dataset, which
    ignores that section: it is dropped (null) rather than reported as incomplete.
    """
    if node.get("source") == "world" or node.get("world") is None:
        return node, ()
    node = copy.deepcopy(node)
    node.world = None
    return node, ("dataset.world.",)


def validate_config(cfg: DictConfig) -> RunConfig:
    """The typed view of a composed run config, after every range check.

    Guarantees: every group is present and typed by its schema; every value of
    :func:`check_ranges` is in range; ``privacy.epsilon`` is a float (``inf`` if non-private).
    """
    for group in GROUPS:
        if group not in cfg or cfg[group] is None:
            raise ConfigError(f"config group '{group}' is missing: choose one with {group}=<option>")
    dataset, ignored = _dataset_node(cfg.dataset)
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith(("hydra.", *ignored)))
    if missing:  # a template's `path: ???`, or a field a user's group file left out
        raise ConfigError(f"config key '{missing[0]}' has no value: set it on the command line ({missing[0]}=...) "
                          "or in its group file")
    run = RunConfig(
        model=to_typed(cfg.model, ModelConfig, "model"),
        dataset=to_typed(dataset, DatasetConfig, "dataset"),
        privacy=to_typed(cfg.privacy, PrivacyConfig, "privacy"),
        eval=to_typed(cfg.eval, EvalConfig, "eval"),
        strategy=to_typed(cfg.strategy, StrategyConfig, "strategy"),
        # The logger's own schema (wandb_logger_schema...) is the type it was composed with.
        logger=to_typed(cfg.logger, LoggerConfig, "logger"),
        strength=to_typed(cfg.strength, StrengthConfig, "strength"),
        method=cfg.method,
        guidance=cfg.guidance,
        seed=int(cfg.seed),
    )
    check_ranges(run.model, run.dataset, run.privacy, run.eval, run.strategy, run.logger)
    return run
