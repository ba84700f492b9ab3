"""Structured-config schemas: the types of every config group, without defaults.

Each dataclass is registered in Hydra's ConfigStore (:mod:`benchmark.config.store`) and
named first in its group files' defaults list, so composition itself rejects a key that
is not a field, or a value of the wrong type, naming the key. The YAML files under
``conf/`` are the only source of values: no field here has a default, so a group file
that leaves a field out is an error (``Missing mandatory value: model.dtype``), not a
silent fallback that could drift from the YAML.

Range checks (epsilon > 0, a known dataset source...) live in
:mod:`benchmark.config.validation`, in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

from omegaconf import DictConfig


@dataclass
class ModelConfig:
    name: str
    # A hub id (``runwayml/stable-diffusion-v1-5``), a local folder, or ``builtin:tiny``.
    # Whether it is the offline world is read from the loaded folder (its world.json).
    pretrained: str
    revision: Optional[str]
    resolution: int
    dtype: str
    clip_model: Optional[str]  # hub id / folder of a CLIPModel; null: the world's own
    inception: bool  # clean-fid Inception features (real models)
    copy_detector: Optional[str]  # SSCD torchscript path; null: the pixel descriptor
    copy_threshold: float  # similarity above which a generation counts as a copy
    # DPAgg-TI's default R on this model; null: the vocabulary's mean row norm.
    embedding_radius: Optional[float]


@dataclass
class ConceptConfig:
    kind: str  # style | object
    placeholder: str
    initializer_token: str
    # TI prompt templates ("{}" the placeholder, "{caption}" the image's caption);
    # null: the generic style/object templates of the textual-inversion paper.
    templates: Optional[list[str]]


@dataclass
class WorldSourceConfig:
    population: str  # private_style | proxy_style | memorized | local_memorized
    num_adapt: int
    num_heldout: int
    seed: int


@dataclass
class DatasetConfig:
    name: str
    source: str  # world | imagefolder | hf | memorization
    path: Optional[str]  # imagefolder root or Hugging Face dataset id; null for the world
    adapt_split: str
    heldout_split: str
    image_column: str
    caption_column: str
    max_adapt_images: Optional[int]  # null: every image of the adaptation split
    concept: ConceptConfig
    world: Optional[WorldSourceConfig]  # source: world only
    prompts_file: str  # source: memorization
    images_column: str  # source: memorization
    eval_prompts: list[str]  # "{}" marks the placeholder; empty: one per adaptation caption
    # [x0, y0, x1, y1] (fractions of the image): memorization sets also measure copying of
    # this region alone (local memorization, e.g. a motif at a fixed place); null: none.
    copy_region: Optional[list[float]]


@dataclass
class PrivacyConfig:
    epsilon: float  # > 0; YAML ``.inf`` / command line ``inf``: non-private
    delta: float
    accountant: str

    @property
    def is_private(self) -> bool:
        return not math.isinf(float(self.epsilon))


@dataclass
class SamplerConfig:
    scheduler: str  # ddim | dpm | euler | pndm | ddpm
    num_inference_steps: int
    guidance_scale: float
    batch_size: int
    eta: float
    negative_prompt: str  # the unconditional branch of classifier-free guidance ("": the papers' CFG)


@dataclass
class MembershipInferenceConfig:
    """The evaluation-only membership-inference stage (benchmark/metrics/membership_stage.py)."""

    enabled: bool
    timesteps: list[int]  # the loss attacks' fixed diffusion timesteps (raw and calibrated)
    noises_per_timestep: int  # fixed (latent sample, noise) draws per timestep
    noise_seed: int  # public seed of those draws: identical for every image and run
    batch_size: int  # (candidate, draw) pairs per UNet call


@dataclass
class EvalConfig:
    num_images: int
    images_per_prompt: Optional[int]  # null: spread num_images over the prompts
    metrics: list[str]  # metric names (benchmark/metrics/catalog.py), computed in this order
    kid_subset_size: int
    memorization_threshold: Optional[float]  # null: the model's copy_threshold
    grid_images: int
    sampler: SamplerConfig
    membership_inference: MembershipInferenceConfig


@dataclass
class StrategyConfig:
    accelerator: str
    devices: Any  # an int, a list of device ids, or "auto"
    num_nodes: int
    strategy: str
    precision: str
    # Trainer options DP-SGD refuses (one Poisson batch per noisy step; it clips per example).
    accumulate_grad_batches: int
    gradient_clip_val: Optional[float]


@dataclass
class LoggerConfig:
    """A logger: ``_target_`` names its factory in :mod:`benchmark.lightning.loggers`."""

    _target_: str


@dataclass
class WandbLoggerConfig(LoggerConfig):
    project: str
    entity: Optional[str]
    mode: str  # online (falls back to offline without an account) | offline | disabled
    log_images: bool


@dataclass
class StrengthConfig:
    """The mitigation strength a job ran at (``conf/strength/``), recorded in its config.

    ``preset`` is set by the ``guidance_strength/<guidance>_<strength>.yaml`` file that
    applied the guidance's knob; it stays null when that guidance has no such preset.
    """

    name: str  # default | weak | medium | strong
    preset: Optional[str]


# Every schema and where its node sits in the composed run config.
SCHEMA_PATHS: dict[type, str] = {
    ModelConfig: "model", DatasetConfig: "dataset", ConceptConfig: "dataset.concept",
    WorldSourceConfig: "dataset.world", PrivacyConfig: "privacy", EvalConfig: "eval",
    SamplerConfig: "eval.sampler", MembershipInferenceConfig: "eval.membership_inference", StrategyConfig: "strategy", LoggerConfig: "logger",
    WandbLoggerConfig: "logger", StrengthConfig: "strength",
}


@dataclass
class RunConfig:
    """The validated, typed view of one composed run config."""

    model: ModelConfig
    dataset: DatasetConfig
    privacy: PrivacyConfig
    eval: EvalConfig
    strategy: StrategyConfig
    logger: Union[LoggerConfig, WandbLoggerConfig]
    strength: StrengthConfig
    method: DictConfig  # checked by the adaptation's own class via _target_
    guidance: DictConfig  # checked by the guidance's own class via _target_
    seed: int
