"""Logger choices: W&B falls back to offline without an account; csv writes files."""

from benchmark.config import LoggerConfig
from benchmark.lightning.factories import make_logger


def test_wandb_online_without_account_runs_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_MODE", raising=False)
    logger = make_logger(LoggerConfig(kind="wandb", mode="online"), tmp_path, "r", "g", ["method:ti"], {"a": 1})
    try:
        assert logger.experiment.settings.mode == "offline"
        assert logger.experiment.group == "g" and "method:ti" in logger.experiment.tags
        assert dict(logger.experiment.config)["a"] == 1
    finally:
        import wandb

        wandb.finish()


def test_csv_logger_writes_metrics(tmp_path):
    logger = make_logger(LoggerConfig(kind="csv"), tmp_path, "r", "g", [], {})
    logger.log_metrics({"eval/fid": 1.5})
    logger.save()
    text = "".join(p.read_text() for p in tmp_path.rglob("metrics.csv"))
    assert "eval/fid" in text and "1.5" in text


def test_none_logger_is_none(tmp_path):
    assert make_logger(LoggerConfig(kind="none"), tmp_path, "r", "g", [], {}) is None
