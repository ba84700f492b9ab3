"""The method YAML is the one source of defaults: the dataclasses carry none, and options inherit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from benchmark.adapt.base import AdaptationMethod
from tests.adapt._helpers import compose, method_from_yaml

METHODS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "method").glob("*.yaml"))


@pytest.mark.parametrize("name", METHODS)
def test_every_method_field_comes_from_its_yaml_and_none_has_a_python_default(name):
    node = compose([f"method={name}"]).method
    method = method_from_yaml(name)
    assert isinstance(method, AdaptationMethod) and method.name == name
    fields = {f.name: f for f in dataclasses.fields(method)}
    # A Python default could drift from the YAML's (ti once said 600 steps there, 800 here).
    with_defaults = [f for f, spec in fields.items()
                     if spec.default is not dataclasses.MISSING or spec.default_factory is not dataclasses.MISSING]
    assert not with_defaults, f"{type(method).__name__} has Python defaults for {with_defaults}"
    assert set(node) - {"_target_"} == set(fields), "the YAML must set exactly the dataclass fields"


def test_lora_is_dpsgd_lora_with_another_target_and_name():
    lora = OmegaConf.to_container(compose(["method=lora"]).method)
    dpsgd = OmegaConf.to_container(compose(["method=dpsgd_lora"]).method)
    assert lora.pop("_target_").endswith(".LoRA") and lora.pop("name") == "lora"
    dpsgd.pop("_target_"), dpsgd.pop("name")
    assert lora == dpsgd
    assert not method_from_yaml("lora").private and method_from_yaml("dpsgd_lora").private
