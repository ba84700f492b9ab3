"""Loggers are built by the factory their YAML names (`_target_`); W&B keeps its semantics.

- ``mode: online`` without an account falls back to offline (a local run, synced later);
- ``mode: disabled`` builds no logger and writes nothing;
- group, tags and job_type come from the job (make_logger passes them through);
- csv writes metrics.csv under the run directory; none builds nothing.
"""

import pytest
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from omegaconf import OmegaConf

from benchmark.config import default_config
from benchmark.config.schema import LoggerConfig, WandbLoggerConfig
from benchmark.lightning import loggers
from benchmark.lightning.loggers import finish, log_sample_grid, make_logger


@pytest.fixture()
def no_account(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc


def _wandb(**fields) -> WandbLoggerConfig:
    return default_config(LoggerConfig, "logger=wandb", **fields)


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_wandb_online_without_account_runs_offline_with_the_jobs_group_tags_and_job_type(tmp_path, no_account):
    logger = make_logger(_wandb(mode="online"), tmp_path, "r", "g", ["method:ti"], {"a": 1}, job_type="sample-evaluate")
    try:
        run = logger.experiment
        assert isinstance(logger, WandbLogger) and run.settings.mode == "offline"
        assert run.group == "g" and "method:ti" in run.tags and run.job_type == "sample-evaluate"
        assert dict(run.config)["a"] == 1 and run.project == "dp-diffusion-bench"
        assert list(tmp_path.glob("wandb/offline-run-*"))  # kept locally for `wandb sync`
    finally:
        finish(logger, succeeded=True)


def test_wandb_disabled_builds_nothing_and_writes_nothing(tmp_path, no_account):
    assert make_logger(_wandb(mode="disabled"), tmp_path / "run", "r", "g", [], {}) is None
    assert not (tmp_path / "run").exists()


def test_csv_logger_writes_metrics(tmp_path):
    logger = make_logger(default_config(LoggerConfig, "logger=csv"), tmp_path, "r", "g", [], {})
    assert isinstance(logger, CSVLogger)
    logger.log_metrics({"eval/fid": 1.5})
    logger.save()
    text = "".join(p.read_text() for p in tmp_path.rglob("metrics.csv"))
    assert "eval/fid" in text and "1.5" in text


def test_none_logger_is_none(tmp_path):
    assert make_logger(default_config(LoggerConfig, "logger=none"), tmp_path, "r", "g", [], {}) is None


def test_the_factory_is_the_one_target_names(tmp_path):
    # A new logger needs a function and a YAML file, no branch in the code choosing it.
    built = []

    def spy_logger(run, colour):
        built.append((run.name, run.group, run.output_dir, colour))
        return None

    loggers.spy_logger = spy_logger
    try:
        node = OmegaConf.create({"_target_": "benchmark.lightning.loggers.spy_logger", "colour": "red"})
        make_logger(node, tmp_path, "r", "g", [], {})
    finally:
        del loggers.spy_logger
    assert built == [("r", "g", tmp_path, "red")]


def test_sample_grid_goes_only_to_a_logger_that_takes_images(tmp_path):
    class Images:
        log_images = True
        logged = []

        def log_image(self, key, paths):
            self.logged.append((key, paths))

    taker = Images()
    log_sample_grid(taker, tmp_path / "grid.png")
    assert taker.logged == [("samples_grid", [str(tmp_path / "grid.png")])]
    refuser = Images()
    refuser.log_images, refuser.logged = False, []
    log_sample_grid(refuser, tmp_path / "grid.png")
    log_sample_grid(None, tmp_path / "grid.png")
    assert refuser.logged == []
