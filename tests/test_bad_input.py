"""Bad input: a clear error naming the key/file/value, non-zero exit, no metrics.json."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.config import ConfigError
from benchmark.data.types import DatasetError
from benchmark.models.backbone import ModelLoadError

REPO = Path(__file__).resolve().parents[1]


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "HYDRA_FULL_ERROR": "0"})


def _folder(root: Path, rows: list[dict], images: dict[str, bytes | None] | None = None) -> Path:
    for split in ("train", "test"):
        d = root / split
        d.mkdir(parents=True)
        (d / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        for name, content in (images or {}).items():
            if content is None:
                Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(d / name)
            else:
                (d / name).write_bytes(content)
    return root


def _imagefolder_overrides(path):
    return ["dataset=artist_artworks", f"dataset.path={path}", "method.max_steps=2"]


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_unknown_group_option_lists_the_choices(tmp_path):
    res = _cli(["method=tii", "logger=none"], tmp_path)
    assert res.returncode != 0
    assert "Could not find 'method/tii'" in res.stderr and "ti" in res.stderr and "none" in res.stderr


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_missing_dataset_folder_exits_nonzero_without_metrics(tmp_path):
    res = _cli(["experiment=smoke", *_imagefolder_overrides(tmp_path / "nope"),
                f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert res.returncode == 1
    assert "folder does not exist" in res.stderr and "nope" in res.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_empty_dataset_is_an_error(run_job, tmp_path):
    root = _folder(tmp_path / "ds", [])
    with pytest.raises(DatasetError, match="empty"):
        run_job(_imagefolder_overrides(root))


def test_unreadable_image_is_named(run_job, tmp_path):
    root = _folder(tmp_path / "ds", [{"file_name": "ok.png", "text": "a"}, {"file_name": "bad.png", "text": "b"}],
                   {"ok.png": None, "bad.png": b"not a png"})
    with pytest.raises(DatasetError, match="bad.png"):
        run_job(_imagefolder_overrides(root))
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_metadata_line_without_caption_is_named(run_job, tmp_path):
    root = _folder(tmp_path / "ds", [{"file_name": "ok.png", "text": "a"}, {"file_name": "ok.png"}], {"ok.png": None})
    with pytest.raises(DatasetError, match=r"metadata.jsonl:2: missing caption column 'text'"):
        run_job(_imagefolder_overrides(root))


def test_user_folder_dataset_loads_and_is_resized(run_job, tmp_path):
    root = _folder(tmp_path / "ds", [{"file_name": "ok.png", "text": "a red circle"}] * 2, {"ok.png": None})
    metrics, out = run_job(_imagefolder_overrides(root))
    assert (out / "metrics.json").is_file() and metrics["dataset"] == "artist_artworks"


def test_model_that_cannot_be_loaded_offline_says_how_to_fix_it(run_job):
    with pytest.raises(ModelLoadError, match="must be downloaded first"):
        run_job(["model=sd15"])


@pytest.mark.parametrize("override, key", [
    ("eval.num_images=0", "eval.num_images"),
    ("eval.sampler.num_inference_steps=-3", "eval.sampler.num_inference_steps"),
    ("privacy.epsilon=0", "privacy.epsilon"),
    ("privacy.epsilon=abc", "privacy.epsilon"),
    ("privacy.delta=1.5", "privacy.delta"),
    ("dataset.captoin_column=x", "dataset.captoin_column"),   # refused while composing
    ("+dataset.captoin_column=x", "dataset.captoin_column"),  # `+` gets past composition, not validation
    ("+method.max_stpes=3", "max_stpes"),
    ("model.embedding_radius=-1", "model.embedding_radius"),
])
def test_invalid_values_name_their_key(run_job, override, key, tmp_path):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run_job([override])
    assert not (tmp_path / "run" / "metrics.json").exists()  # refused before any result


def test_zero_training_steps_is_an_error(run_job):
    with pytest.raises(ValueError, match="max_steps"):
        run_job(["method.max_steps=0"])
