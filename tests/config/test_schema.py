"""Schemas reject typos and wrong types at composition, naming the key; values are typed."""

import math
import os
import shutil
import subprocess
import sys
from dataclasses import fields

import pytest

from benchmark.config import (CONFIG_DIR, ConfigError, DatasetConfig, ModelConfig, SamplerConfig, compose_config,
                              default_config, validate_config)
from benchmark.config.schema import SCHEMA_PATHS

REPO = CONFIG_DIR.parent


def test_schemas_carry_no_defaults():
    # The YAML files are the one source of values: a default here could drift from them.
    for schema in SCHEMA_PATHS:
        defaulted = [f.name for f in fields(schema) if f.default is not f.default_factory]
        assert not defaulted, f"{schema.__name__} has defaults for {defaulted}"
    with pytest.raises(TypeError):
        SamplerConfig()


@pytest.mark.parametrize("override,message", [
    ("dataset.captoin_column=x", "unknown config key 'dataset.captoin_column'"),
    ("model.resolution=big", "invalid value for config key 'model.resolution'"),
    ("privacy.epsilon=abc", "invalid value for config key 'privacy.epsilon'"),
    ("eval.sampler.stepz=3", "unknown config key 'eval.sampler.stepz'"),
])
def test_composition_rejects_a_typo_or_a_wrong_type_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        compose_config([override])


def test_a_typo_inside_a_dataset_file_fails_composition(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf)
    file = conf / "dataset" / "tiny_style.yaml"
    file.write_text(file.read_text().replace("name: tiny_style", "name: tiny_style\ncaptoin_column: text"))
    with pytest.raises(ConfigError, match=r"unknown config key 'dataset\.captoin_column'"):
        compose_config([], config_dir=conf)


def test_a_key_added_with_plus_is_still_rejected_by_validation():
    cfg = compose_config(["+dataset.captoin_column=x"])  # `+` bypasses the schema while composing
    with pytest.raises(ConfigError, match=r"dataset\.captoin_column"):
        validate_config(cfg)


@pytest.mark.parametrize("value,expected", [("1", 1.0), ("0.5", 0.5), ("inf", math.inf), ("8", 8.0)])
def test_epsilon_is_a_float_from_ints_floats_and_inf(value, expected):
    run = validate_config(compose_config(["privacy=dp", f"privacy.epsilon={value}"]))
    assert isinstance(run.privacy.epsilon, float) and run.privacy.epsilon == expected
    assert run.privacy.is_private == (expected != math.inf)


def test_yaml_inf_is_non_private():
    run = validate_config(compose_config([]))
    assert run.privacy.epsilon == math.inf and not run.privacy.is_private


def test_a_template_without_its_path_names_the_key():
    with pytest.raises(ConfigError, match=r"'dataset\.path' has no value"):
        validate_config(compose_config(["dataset=artist_artworks"]))


def test_default_config_reads_the_yaml():
    assert default_config(SamplerConfig, num_inference_steps=4).num_inference_steps == 4
    assert default_config(SamplerConfig).num_inference_steps == 25  # conf/eval/default.yaml
    micro = default_config(ModelConfig, "model=micro")
    assert micro.pretrained == "builtin:micro" and micro.resolution == 32
    assert default_config(DatasetConfig).world.num_adapt == 32  # conf/dataset/tiny_style.yaml


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_cli_prints_one_line_naming_the_key_and_exits_nonzero(tmp_path):
    res = subprocess.run([sys.executable, "-m", "benchmark", "dataset.captoin_column=x", "logger=none",
                          f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0"})
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert lines == ["error: unknown config key 'dataset.captoin_column': dataset (DatasetConfig) has no such field; "
                     "check the spelling"], res.stderr
    assert not (tmp_path / "run").exists()
