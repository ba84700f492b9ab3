"""Dataset sources: the registry, memorization JSONL (ground truth, paraphrases incl. caption1..K),
world-only attributes, the content hash, bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.config import ConfigError, DatasetConfig, WorldSourceConfig, default_config
from benchmark.data.memorization import paraphrases_of
from benchmark.data.types import DatasetError, content_hash
from benchmark.datasets import load_dataset, source_names


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


def test_sdv1_500_template_runs_on_a_user_folder(run_job, tmp_path, micro_world):
    _write(tmp_path / "sd500", [
        {"caption": "a famous poster", "images": ["gt/a.png"], "caption1": "a well known poster"},
        {"caption": "a dog on grass", "memorized": False, "caption1": "a puppy on a lawn"},
    ])
    metrics, out = run_job(["method=none", "guidance=prss", "dataset=sdv1_500_memorized",
                            f"dataset.path={tmp_path / 'sd500'}",
                            "eval.images_per_prompt=2", "eval.metrics=[clip_score,memorization,detection,trigger]",
                            "guidance.calibration_images=2"])
    assert metrics["dataset"] == "sdv1_500_memorized" and "eval/fid" not in metrics
    assert "eval/control_clip_score" in metrics and "eval/detection_auc" in metrics
    # The copy metric of the memorized prompt (images 0 and 1) equals a direct computation from the PNGs.
    from benchmark.metrics.memorization import PixelCopyDescriptor, max_similarity

    images = torch.stack([torch.from_numpy(np.asarray(Image.open(out / "images" / f"{i:05d}.png"))).permute(2, 0, 1)
                          for i in range(2)])
    truth = torch.from_numpy(np.asarray(Image.open(tmp_path / "sd500" / "gt" / "a.png").convert("RGB")
                                        .resize((32, 32), Image.BICUBIC))).permute(2, 0, 1)[None]
    sims = max_similarity(images, truth, PixelCopyDescriptor())
    assert metrics["eval/memorized_similarity_mean"] == pytest.approx(float(sims.mean()), abs=1e-6)
    # The clip-vs-copy analysis reads the same run back: the same images, prompts and similarities.
    from benchmark.metrics.encoders import load_clip
    from benchmark.report.clip_vs_copy import per_image_scores

    model, processor = load_clip(micro_world / "clip")
    similarity, clip = per_image_scores(out, model, processor, PixelCopyDescriptor())
    assert similarity == pytest.approx(sims.tolist(), abs=1e-6) and len(clip) == 2
    with pytest.raises(DatasetError, match="folder does not exist"):
        run_job(["method=none", "dataset=sdv1_500_memorized", f"dataset.path={tmp_path / 'nope'}"], tmp_path / "r2")


def test_an_unknown_source_is_a_config_error_listing_the_registered_ones():
    assert source_names() == ["hf", "imagefolder", "memorization", "world"]
    with pytest.raises(ConfigError, match="dataset.source='webdataset' .* hf, imagefolder, memorization, world"):
        load_dataset(default_config(DatasetConfig, name="x", source="webdataset"), resolution=32)


def _folder(root, captions):
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        rows = []
        for i, caption in enumerate(captions):
            Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(root / split / f"{i}.png")
            rows.append(json.dumps({"file_name": f"{i}.png", "text": caption}))
        (root / split / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return root


def test_only_world_prompts_carry_attributes(tmp_path):
    user = load_dataset(default_config(DatasetConfig, name="u", source="imagefolder",
                                       path=str(_folder(tmp_path, ["a red star"])),
                                       eval_prompts=["a red star in the style of {}"]), resolution=32)
    assert user.prompts[0].attributes == {}  # the words mean nothing outside the world
    small_world = default_config(WorldSourceConfig, num_adapt=4, num_heldout=4)
    world = load_dataset(default_config(DatasetConfig, name="w", source="world", world=small_world,
                                        eval_prompts=["a red star in the style of {}"]), resolution=32)
    assert world.prompts[0].attributes == {"shape": "star", "colour": "red"}
    assert all(p.attributes for p in load_dataset(default_config(
        DatasetConfig, name="w", source="world", world=small_world), resolution=32).prompts)


def test_content_hash_covers_both_splits_and_a_shared_split_once(tmp_path):
    data = load_dataset(default_config(DatasetConfig, name="u", source="imagefolder",
                                       path=str(_folder(tmp_path, ["a", "b"]))), 32)
    assert data.content_hash == content_hash(data.adapt, data.heldout) and len(data.content_hash) == 16
    other = load_dataset(default_config(DatasetConfig, name="u", source="imagefolder", path=str(tmp_path),
                                        max_adapt_images=1), 32)
    assert other.content_hash != data.content_hash
    import hashlib
    import hmac

    from benchmark.utils.cache import secret_key

    once = hmac.new(secret_key(), data.adapt.images.numpy().tobytes() + "\n".join(data.adapt.captions).encode(),
                    hashlib.sha256)
    assert content_hash(data.adapt, data.adapt) == once.hexdigest()[:16]  # a shared split is hashed once
