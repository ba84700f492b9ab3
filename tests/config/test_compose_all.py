"""Every option file of every config group composes through the schemas and validates.

A file that names a key its schema lacks, leaves a field out, or holds a value out of
range fails here, before any job runs. Loggers are also built (none, csv, wandb disabled).
"""

from pathlib import Path

import pytest
import yaml

from benchmark.config import CONFIG_DIR, ConfigError, validate_config
from benchmark.lightning.loggers import make_logger
from benchmark.run import FAMILIES, build_method
from tests.config.helpers import composed

GROUPS = ("model", "dataset", "method", "guidance", "privacy", "eval", "strategy", "logger", "experiment",
          "strength")
# Option files that need a value only the user has (the templates' `path: ???`, the file to bind).
REQUIRED = {("dataset", "artist_artworks"): ["dataset.path=/data/artist"],
            ("dataset", "paris2024_pictograms"): ["dataset.path=/data/paris2024"],
            ("method", "embedding_file"): [f"method.path={Path(__file__)}"]}


def _options(group: str) -> list[str]:
    """The selectable options of a group: its YAML files, less the `_`-prefixed bases."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


OPTIONS = [(group, option) for group in GROUPS for option in _options(group)]


@pytest.fixture()
def many_gpus(monkeypatch):
    """The GPU strategies validate on a machine without GPUs (the device count is checked)."""
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)


def test_every_group_has_its_options():
    found = {group: _options(group) for group in GROUPS}
    assert {"tiny", "micro", "sd14", "sd15", "sd21"} <= set(found["model"])
    assert {"default", "weak", "medium", "strong"} == set(found["strength"])
    assert all(found.values()), found


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_validates(group, option, many_gpus):
    cfg = composed(f"{group}={option}", *REQUIRED.get((group, option), ()))
    run = validate_config(cfg)
    if group in ("model", "dataset", "method", "guidance", "strength"):
        assert cfg[group].name == option  # each file names itself: tags, run names, reports
    assert run.privacy.epsilon > 0 and isinstance(run.privacy.epsilon, float)
    # Every composed job instantiates one method of each family, and its own checks accept
    # the YAML's values (the checks that run before anything loads).
    method, guidance = build_method(cfg.method, "method"), build_method(cfg.guidance, "guidance")
    assert isinstance(method, FAMILIES["method"]) and isinstance(guidance, FAMILIES["guidance"])
    if group in ("method", "guidance"):
        assert (method if group == "method" else guidance).name == option
    if method.private or not run.privacy.is_private:
        method.check(run.privacy)
    guidance.check(run.eval.sampler)


def test_a_class_of_the_other_family_is_refused_naming_the_group():
    with pytest.raises(ConfigError, match=r"method._target_='benchmark.guidance.prss.PRSS' is not a AdaptationMethod"):
        build_method(composed("guidance=prss").guidance, "method")
    with pytest.raises(ConfigError, match=r"invalid guidance config .*lambda_sss"):
        build_method(composed("guidance=prss", "+guidance.lambda_sss=1").guidance, "guidance")


def test_micro_inherits_tiny_and_sd14_sd21_inherit_sd15():
    def model(name):
        return validate_config(composed(f"model={name}")).model

    tiny, micro = model("tiny"), model("micro")
    assert (micro.name, micro.pretrained) == ("micro", "builtin:micro")
    assert {**vars(micro), "name": "tiny", "pretrained": "builtin:tiny"} == vars(tiny)
    sd15 = model("sd15")
    for name, pretrained, resolution in (("sd14", "CompVis/stable-diffusion-v1-4", 512),
                                         ("sd21", "stabilityai/stable-diffusion-2-1", 768)):
        other = model(name)
        assert (other.pretrained, other.resolution) == (pretrained, resolution)
        assert {**vars(other), "name": "sd15", "pretrained": sd15.pretrained, "resolution": 512} == vars(sd15)


def test_strategies_inherit_cpu_to_gpu_to_ddp_to_multinode(many_gpus):
    def strategy(name):
        return validate_config(composed(f"strategy={name}")).strategy

    cpu, gpu, ddp, multi = (strategy(n) for n in ("cpu", "gpu", "ddp", "ddp_multinode"))
    assert (gpu.accelerator, gpu.precision, gpu.devices) == ("gpu", "32-true", 1)
    assert (ddp.strategy, ddp.devices, ddp.precision) == ("ddp", 2, "32-true")
    assert (multi.devices, multi.num_nodes, multi.strategy) == (4, 2, "ddp")
    # DP-SGD's refusals read these two: every strategy has them from cpu.yaml.
    assert {(s.accumulate_grad_batches, s.gradient_clip_val) for s in (cpu, gpu, ddp, multi)} == {(1, None)}


def _own_keys(path: Path) -> set[str]:
    return set(yaml.safe_load(path.read_text())) - {"defaults"}


def test_child_files_set_only_what_differs_from_their_parent():
    # micro/sd14/sd21/gpu/ddp/ddp_multinode/wandb_offline name a parent; copy-paste would show here.
    for group, option, parent in (("model", "micro", "tiny"), ("model", "sd14", "sd15"), ("model", "sd21", "sd15"),
                                  ("strategy", "gpu", "cpu"), ("strategy", "ddp", "gpu"),
                                  ("strategy", "ddp_multinode", "ddp"), ("logger", "wandb_offline", "wandb")):
        file = CONFIG_DIR / group / f"{option}.yaml"
        assert yaml.safe_load(file.read_text())["defaults"][0] == parent
        parent_values = yaml.safe_load((CONFIG_DIR / group / f"{parent}.yaml").read_text())
        child_values = yaml.safe_load(file.read_text())
        same = {k for k in _own_keys(file) if parent_values.get(k) == child_values[k]}
        assert not same, f"{file.name} repeats {same} of {parent}.yaml"


@pytest.mark.parametrize("option", ["none", "csv", "wandb"])
def test_logger_options_build_their_logger(option, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    overrides = [f"logger={option}"] + (["logger.mode=disabled"] if option == "wandb" else [])
    run = validate_config(composed(*overrides))
    logger = make_logger(run.logger, tmp_path, "r", "g", ["method:ti"], {"seed": 0}, job_type="sample-evaluate")
    if option == "csv":
        from lightning.pytorch.loggers import CSVLogger

        assert isinstance(logger, CSVLogger) and Path(logger.log_dir).is_relative_to(tmp_path)
    else:  # none, and W&B disabled: no logger, nothing written
        assert logger is None
        assert not list(tmp_path.iterdir())
