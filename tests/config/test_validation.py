"""Range checks, all in benchmark/config/validation.py: each names its key."""

import copy
import math

import pytest
from omegaconf import OmegaConf

from benchmark.config import ConfigError, compose_config, validate_config


@pytest.fixture(scope="module")
def main_job():
    return compose_config([])


def _with(cfg, key: str, value):
    """``cfg`` with ``key`` set (the typed node checks the type; no second composition)."""
    changed = copy.deepcopy(cfg)
    OmegaConf.update(changed, key, value, merge=False)
    return changed


@pytest.mark.parametrize("key,value", [
    ("eval.num_images", 0), ("eval.images_per_prompt", -1), ("eval.sampler.num_inference_steps", -3),
    ("eval.sampler.batch_size", 0), ("eval.kid_subset_size", 0), ("eval.grid_images", 0),
    ("privacy.epsilon", 0), ("privacy.epsilon", -math.inf), ("privacy.epsilon", math.nan),
    ("privacy.delta", 1.5), ("privacy.delta", 0.0),
    ("model.resolution", 0), ("model.embedding_radius", -1.0),
    ("dataset.source", "ftp"), ("dataset.concept.kind", "sound"), ("dataset.world.num_adapt", 0),
    ("dataset.world.num_heldout", -1), ("dataset.max_adapt_images", 0),
    ("dataset.world.population", "private_styel"), ("dataset.copy_region", [0.5, 0.0, 0.25, 1.0]),
    ("dataset.copy_region", [0.0, 0.0, 1.5, 1.0]), ("dataset.copy_region", [0.0, 0.0, 0.5]),
    ("strategy.num_nodes", 0), ("strategy.accumulate_grad_batches", 0), ("strategy.gradient_clip_val", 0.0),
    ("logger.mode", "onlin"),
])
def test_out_of_range_value_names_its_key(main_job, key, value):
    cfg = _with(main_job, key, value)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(cfg)


@pytest.mark.parametrize("key,value", [
    ("eval.images_per_prompt", 1), ("model.embedding_radius", None), ("privacy.delta", 0.5),
    ("privacy.epsilon", math.inf), ("dataset.world.num_adapt", 1), ("dataset.world.num_heldout", 0),
    ("dataset.world.population", "proxy_style"), ("dataset.copy_region", [0.0, 0.0, 1.0, 1.0]),
    ("strategy.gradient_clip_val", 1.0), ("logger.mode", "disabled"),
])
def test_boundary_values_in_range_pass(main_job, key, value):
    validate_config(_with(main_job, key, value))


def test_a_wrong_type_is_refused_by_the_typed_node(main_job):
    with pytest.raises(Exception, match="num_images"):
        _with(main_job, "eval.num_images", "many")


@pytest.mark.skipif(__import__("torch").cuda.device_count() >= 2, reason="this machine has 2 GPUs")
def test_more_gpus_than_exist_names_strategy_devices():
    with pytest.raises(ConfigError, match="strategy.devices"):
        validate_config(compose_config(["strategy=ddp"]))
    validate_config(compose_config(["strategy=ddp", "strategy.accelerator=cpu"]))  # CPU processes are fine


def test_a_world_section_on_another_source_is_ignored_but_a_world_dataset_needs_it_whole():
    # `experiment=smoke dataset=artist_artworks`: smoke sizes dataset.world, which only the world source reads.
    run = validate_config(compose_config(["experiment=smoke", "dataset=artist_artworks", "dataset.path=/data/a"]))
    assert run.dataset.world is None and run.dataset.source == "imagefolder"
    with pytest.raises(ConfigError, match=r"dataset\.world"):
        validate_config(compose_config(["dataset=tiny_style", "dataset.world=null"]))
