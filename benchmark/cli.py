"""Command line: ``python -m benchmark [group=option ...]`` (Hydra)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from benchmark.config import ConfigError
from benchmark.data.datasets import DatasetError
from benchmark.models.backbone import ModelLoadError
from benchmark.report.table import format_metrics_table

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("benchmark")

# Errors caused by the user's input: report them in one line, not with a traceback.
USER_ERRORS = (ConfigError, DatasetError, ModelLoadError, FileNotFoundError, ValueError)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    from benchmark.run import run

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = run(cfg, output_dir)
    except USER_ERRORS as err:
        log.error("%s: %s", type(err).__name__, err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print(format_metrics_table(metrics))
    print(f"results: {output_dir}")


def entry() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()


if __name__ == "__main__":
    entry()
