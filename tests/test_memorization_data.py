"""Memorization datasets from JSONL: ground truth, paraphrases (incl. caption1..K), bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from benchmark.config import DatasetConfig, WorldSourceConfig, default_config
from benchmark.data.datasets import DatasetError, load_dataset
from benchmark.data.memorization import paraphrases_of


def _write(root, rows, images=("gt/a.png", "gt/b.png")):
    (root / "gt").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(images):
        Image.fromarray(np.full((40, 48, 3), 30 * i, np.uint8)).save(root / name)
    (root / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return default_config(DatasetConfig, "dataset=sdv1_500_memorized", name="mem", path=str(root))


def test_jsonl_layout_loads_prompts_ground_truth_and_paraphrases(tmp_path):
    cfg = _write(tmp_path, [
        {"caption": "a famous poster", "images": ["gt/a.png", "gt/b.png"], "caption1": "p1", "caption2": "p2",
         "caption10": "p10"},
        {"caption": "a sofa", "images": "gt/b.png", "memorized": True, "paraphrases": ["a couch"]},
        {"caption": "a dog on grass", "memorized": False},
    ])
    data = load_dataset(cfg, resolution=32)
    assert [p.template for p in data.prompts] == ["a famous poster", "a sofa", "a dog on grass"]
    assert [p.memorized for p in data.prompts] == [True, True, False]
    assert [p.ground_truth for p in data.prompts] == [[0, 1], [2], []]
    assert data.prompts[0].paraphrases == ["p1", "p2", "p10"]  # numeric, not lexicographic, order
    assert data.prompts[1].paraphrases == ["a couch"]
    assert data.adapt.images.shape == (3, 3, 32, 32)


def test_paraphrase_columns():
    assert paraphrases_of({"caption": "x", "caption2": "b", "caption1": "a", "caption3": " "}) == ["a", "b"]
    assert paraphrases_of({"caption": "x"}) == []
    with pytest.raises(DatasetError, match="list of strings"):
        paraphrases_of({"paraphrases": "one string"})


@pytest.mark.parametrize("rows, message", [
    ([{"caption": "a famous poster"}], r"prompts.jsonl:1: memorized prompt 'a famous poster' has no ground-truth"),
    ([{"caption": "ok", "images": ["gt/a.png"]}, {"caption": "lost", "images": ["gt/missing.png"]}],
     r"prompts.jsonl:2: ground-truth image of 'lost' does not exist: .*missing.png"),
    ([{"images": ["gt/a.png"]}], r"prompts.jsonl:1: missing caption column 'caption'"),
    ([{"caption": "a", "images": ["gt/a.png"], "memorized": "yes"}], r"'memorized' must be true or false"),
])
def test_bad_memorization_rows_are_named(tmp_path, rows, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(_write(tmp_path, rows), resolution=32)


def test_missing_prompt_file_is_named(tmp_path):
    cfg = default_config(DatasetConfig, "dataset=sdv1_500_memorized", name="mem", path=str(tmp_path))
    with pytest.raises(DatasetError, match="prompts.jsonl"):
        load_dataset(cfg, resolution=32)


def test_tiny_memorized_world_set_has_paraphrases_for_every_prompt():
    cfg = default_config(DatasetConfig, "dataset=tiny_memorized",
                         world=default_config(WorldSourceConfig, "dataset=tiny_memorized", num_adapt=4))
    data = load_dataset(cfg, resolution=32)
    assert sum(p.memorized for p in data.prompts) == 16 and len(data.prompts) == 20
    assert all(len(p.paraphrases) == 15 and p.template not in p.paraphrases for p in data.prompts)


def test_sdv1_500_template_runs_on_a_user_folder(run_job, tmp_path):
    _write(tmp_path / "sd500", [
        {"caption": "a famous poster", "images": ["gt/a.png"], "caption1": "a well known poster"},
        {"caption": "a dog on grass", "memorized": False, "caption1": "a puppy on a lawn"},
    ])
    metrics, _ = run_job(["guidance=prss", "dataset=sdv1_500_memorized", f"dataset.path={tmp_path / 'sd500'}",
                          "eval.images_per_prompt=2", "eval.fid=false", "guidance.calibration_images=2"])
    assert metrics["dataset"] == "sdv1_500_memorized" and "eval/memorized_fraction_copied" in metrics
    assert "eval/control_clip_score" in metrics and "eval/detection_auc" in metrics
    with pytest.raises(DatasetError, match="folder does not exist"):
        run_job(["method=none", "dataset=sdv1_500_memorized", f"dataset.path={tmp_path / 'nope'}"], tmp_path / "r2")
