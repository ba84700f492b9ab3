"""Structured-config schemas: the types and defaults behind every config group.

``validate_config`` merges the composed Hydra config onto these dataclasses, so a typo
in a group file (``captoin_column``) or a wrong type fails at start-up with the key
named, instead of silently falling back to a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


# The Hydra config tree (conf/ beside the package, as in an editable install).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


def compose_config(overrides: list[str]) -> DictConfig:
    """The run config ``python -m benchmark <overrides>`` would compose (without ``hydra.*``).

    For tests and scripts that call :func:`benchmark.run.run` in-process.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@dataclass
class ModelConfig:
    name: str = MISSING
    # A hub id (``runwayml/stable-diffusion-v1-5``), a local folder, or ``builtin:tiny``.
    pretrained: str = MISSING
    revision: Optional[str] = None
    resolution: int = 512
    # Image encoder standing in for Inception (FID) and CLIP (CLIP score).
    clip_model: Optional[str] = None  # hub id / folder of a CLIPModel; None: the world's
    inception: bool = True  # clean-fid Inception features (real models)
    copy_detector: Optional[str] = None  # SSCD torchscript path; None: pixel descriptor
    copy_threshold: float = 0.5  # similarity above which a generation counts as a copy (SSCD: 0.5)
    world: bool = False  # the model is the offline world: use its judge and encoders
    # DPAgg-TI's default R on this model. None: the vocabulary's mean row norm (METHODS.md),
    # right where learned rows live at the vocabulary's scale (Stable Diffusion).
    embedding_radius: Optional[float] = None
    dtype: str = "float32"


@dataclass
class ConceptConfig:
    kind: str = "style"  # style | object
    placeholder: str = "<S*>"
    initializer_token: str = "painting"
    # TI prompt templates; "{}" is the placeholder, "{caption}" the image's caption.
    # None: the generic style/object templates of the textual-inversion paper.
    templates: Optional[list[str]] = None


@dataclass
class WorldSourceConfig:
    # Which population of the offline world: private_style | memorized
    population: str = "private_style"
    num_adapt: int = 32
    num_heldout: int = 128
    seed: int = 0


@dataclass
class DatasetConfig:
    name: str = MISSING
    source: str = MISSING  # world | imagefolder | hf | memorization
    path: Optional[str] = None  # imagefolder root or Hugging Face dataset id
    adapt_split: str = "train"
    heldout_split: str = "test"
    image_column: str = "image"
    caption_column: str = "text"
    max_adapt_images: Optional[int] = None
    concept: ConceptConfig = field(default_factory=ConceptConfig)
    world: Optional[WorldSourceConfig] = None
    # source: memorization -- prompts with ground-truth images and paraphrases (benchmark/data/memorization.py)
    prompts_file: str = "prompts.jsonl"
    images_column: str = "images"
    # Evaluation prompts; "{}" marks where the concept's placeholder goes.
    eval_prompts: list[str] = field(default_factory=list)


@dataclass
class PrivacyConfig:
    epsilon: Any = "inf"  # a positive number, or inf for non-private
    delta: float = 1e-5
    accountant: str = "prv"

    @property
    def is_private(self) -> bool:
        return not math.isinf(float(self.epsilon))


@dataclass
class SamplerConfig:
    scheduler: str = "ddim"  # ddim | dpm | euler | pndm | ddpm
    num_inference_steps: int = 25
    guidance_scale: float = 4.0
    batch_size: int = 16
    eta: float = 0.0
    # The unconditional branch of classifier-free guidance ("": the papers' CFG).
    negative_prompt: str = ""


@dataclass
class EvalConfig:
    num_images: int = 64
    images_per_prompt: Optional[int] = None  # None: spread num_images over the prompts
    # Metric names (benchmark/metrics/catalog.py), computed in this order; each declares its keys.
    metrics: list[str] = field(default_factory=lambda: ["fidelity", "clip_score", "concept", "memorization",
                                                        "detection", "trigger"])
    kid_subset_size: int = 50
    memorization_threshold: Optional[float] = None  # None: the model's copy_threshold
    grid_images: int = 32
    sampler: SamplerConfig = field(default_factory=SamplerConfig)


@dataclass
class StrategyConfig:
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    # Trainer options some methods cannot honour (DP-SGD refuses both: one Poisson batch per
    # noisy step, each example clipped by the DP optimizer).
    accumulate_grad_batches: int = 1
    gradient_clip_val: Optional[float] = None


@dataclass
class LoggerConfig:
    kind: str = "none"  # wandb | csv | none
    project: str = "dp-diffusion-bench"
    entity: Optional[str] = None
    mode: str = "offline"  # online | offline | disabled (wandb)
    log_images: bool = True


def _check_positive(value: Any, key: str, allow_inf: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number{' or inf' if allow_inf else ''}, got {value!r}") from None
    if math.isnan(number) or number <= 0 or (math.isinf(number) and not allow_inf):
        raise ConfigError(f"{key} must be > 0{' (or inf)' if allow_inf else ''}, got {value!r}")
    return number


def _typed(node: Any, schema: type, key: str):
    """Merge a config node onto its schema; errors name the group and the key."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        full_key = f"{key}.{err.full_key}" if getattr(err, "full_key", None) else key
        raise ConfigError(f"invalid config at '{full_key}': {err.msg if hasattr(err, 'msg') else err}") from None


@dataclass
class RunConfig:
    """The validated, typed view of one composed run config."""

    model: ModelConfig
    dataset: DatasetConfig
    privacy: PrivacyConfig
    eval: EvalConfig
    strategy: StrategyConfig
    logger: LoggerConfig
    method: DictConfig  # validated by the method's own class via _target_
    seed: int


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


def validate_config(cfg: DictConfig) -> RunConfig:
    """Type-check every group and the numbers that must be positive."""
    for group in ("model", "dataset", "method", "privacy", "eval", "strategy", "logger"):
        if group not in cfg or cfg[group] is None:
            raise ConfigError(f"config group '{group}' is missing: choose one with {group}=<option>")
    run = RunConfig(
        model=_typed(cfg.model, ModelConfig, "model"),
        dataset=_typed(cfg.dataset, DatasetConfig, "dataset"),
        privacy=_typed(cfg.privacy, PrivacyConfig, "privacy"),
        eval=_typed(cfg.eval, EvalConfig, "eval"),
        strategy=_typed(cfg.strategy, StrategyConfig, "strategy"),
        logger=_typed(cfg.logger, LoggerConfig, "logger"),
        method=cfg.method,
        seed=int(cfg.seed),
    )
    _check_positive(run.privacy.epsilon, "privacy.epsilon", allow_inf=True)
    if not 0 < float(run.privacy.delta) < 1:
        raise ConfigError(f"privacy.delta must be in (0, 1), got {run.privacy.delta!r}")
    for key, value in (
        ("eval.num_images", run.eval.num_images),
        ("eval.sampler.num_inference_steps", run.eval.sampler.num_inference_steps),
        ("eval.sampler.batch_size", run.eval.sampler.batch_size),
        ("model.resolution", run.model.resolution),
    ):
        if int(value) <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    if run.model.embedding_radius is not None:
        _check_positive(run.model.embedding_radius, "model.embedding_radius")
    if run.eval.images_per_prompt is not None and run.eval.images_per_prompt <= 0:
        raise ConfigError(f"eval.images_per_prompt must be a positive integer, got {run.eval.images_per_prompt!r}")
    if run.dataset.source not in ("world", "imagefolder", "hf", "memorization"):
        raise ConfigError(f"dataset.source must be one of world, imagefolder, hf, memorization; "
                          f"got {run.dataset.source!r}")
    _check_devices(run.strategy)
    if run.dataset.concept.kind not in ("style", "object"):
        raise ConfigError(f"dataset.concept.kind must be 'style' or 'object', got {run.dataset.concept.kind!r}")
    return run
