"""Every adaptation and guidance method, end to end, on a reduced SD v1.5-shaped model (slow).

The model is random-weight but has SD's exact layout (real CLIP tokenizer, SD's UNet/VAE
block structure, PNDM scheduler, ViT-L/14-shaped CLIP), loaded through ``model=sd15
model.pretrained=<folder>`` as a user's checkpoint would be; the datasets are written in
their official formats. 64x64 images, two sampling steps, a handful of training steps:
this checks that every stage runs on a real-model layout and writes ``metrics.json``, not
what the numbers are.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from tests.data.layouts import write_prss_release, write_single_imagefolder, write_wen
from tests.helpers import compose

pytestmark = pytest.mark.slow

FAST_EVAL = ["eval=fast", "eval.num_images=4", "eval.kid_subset_size=2", "eval.sampler.num_inference_steps=2",
             "eval.sampler.batch_size=4", "logger=none"]
MEMORIZATION_EVAL = ["eval=memorization", "eval.images_per_prompt=1", "eval.sampler.num_inference_steps=2",
                     "eval.sampler.batch_size=4", "logger=none"]
DP = ["privacy=dp", "privacy.epsilon=8"]

# (id, overrides): every adaptation at a finite epsilon where it is DP, and at inf.
ADAPTATIONS = [
    ("ti", ["method=ti", "method.max_steps=2", "method.batch_size=2"]),
    ("dpagg_ti-eps8", ["method=dpagg_ti", "method.max_steps=2", *DP]),
    ("dpagg_ti-inf", ["method=dpagg_ti", "method.max_steps=2"]),
    ("dpsgd_ti-eps8", ["method=dpsgd_ti", "method.epochs=2", "method.batch_size=2", *DP]),
    ("dpsgd_ti-inf", ["method=dpsgd_ti", "method.epochs=2", "method.batch_size=2"]),
    ("dpsgd_lora-eps8", ["method=dpsgd_lora", "method.epochs=2", "method.batch_size=2", "method.rank=2", *DP]),
    ("dpsgd_lora-inf", ["method=dpsgd_lora", "method.epochs=2", "method.batch_size=2", "method.rank=2"]),
    ("lora", ["method=lora", "method.epochs=2", "method.batch_size=2", "method.rank=2"]),
    ("none", ["method=none"]),
]
# Every guidance on the PRSS release layout (thresholds "auto": the official absolute values on a real model).
GUIDANCES = [
    ("none", ["guidance=none"]),
    ("prss-dataset", ["guidance=prss"]),
    ("prss-nearest", ["guidance=prss", "guidance.paraphrases=nearest", "guidance.num_paraphrases=2"]),
    ("pe", ["guidance=pe", "guidance.max_iterations=2"]),
    ("rna", ["guidance=rna"]),
    ("rt", ["guidance=rt"]),
    ("cwr", ["guidance=cwr"]),
    ("gni", ["guidance=gni"]),
    ("negative_prompt", ["guidance=negative_prompt"]),
]


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sd_data")
    return {"style": write_single_imagefolder(root / "style", n=8), "prss": write_prss_release(root, n=3),
            "wen": write_wen(root / "wen", n=3)}


def _model(folder: Path, name: str = "sd15") -> list[str]:
    return [f"model={name}", f"model.pretrained={folder}", "model.dtype=float32", "model.resolution=64",
            "model.inception=false"] + ([f"model.clip_model={folder}/clip"] if (folder / "clip").is_dir() else [])


def _run(overrides: list[str], out: Path) -> dict:
    from benchmark.run import run

    run(compose(overrides), out)
    metrics = json.loads((out / "metrics.json").read_text())
    with Image.open(out / "images" / "00000.png") as im:
        assert im.size == (64, 64)  # sampled at model.resolution, not at the UNet's sample_size
    return metrics


def _style(data_dirs, tmp_path) -> list[str]:
    return ["dataset=artist_artworks", f"dataset.path={data_dirs['style']}", "dataset.adapt_split=.",
            "dataset.heldout_split=random:0.5", f"+method.cache_dir={tmp_path / 'cache'}"]


@pytest.mark.parametrize("name,overrides", ADAPTATIONS, ids=[a for a, _ in ADAPTATIONS])
def test_every_adaptation_runs(sd15_reduced, data_dirs, tmp_path, name, overrides):
    style = _style(data_dirs, tmp_path)
    if "dpagg_ti" not in name:
        style = style[:-1]  # only DPAgg-TI has a cache_dir
    m = _run([*_model(sd15_reduced), *style, *FAST_EVAL, *overrides], tmp_path / "run")
    assert m["method"] == name.split("-")[0] and m["eval/num_images"] == 4
    assert math.isfinite(m["eval/fid"]) and "eval/clip_score" in m
    if name.endswith("eps8"):
        assert m["privacy/private"] is True and 0 < float(m["privacy/epsilon"]) <= 8 + 1e-9
    else:
        assert float(m["privacy/epsilon"]) == math.inf


@pytest.mark.parametrize("name,overrides", GUIDANCES, ids=[g for g, _ in GUIDANCES])
def test_every_guidance_runs(sd15_reduced, data_dirs, tmp_path, name, overrides):
    m = _run([*_model(sd15_reduced), "method=none", "dataset=sdv1_500_memorized",
              f"dataset.path={data_dirs['prss']}", *MEMORIZATION_EVAL, *overrides], tmp_path / "run")
    assert m["guidance"] == name.split("-")[0] and m["eval/num_images"] == 3
    assert "eval/memorized_similarity_mean" in m and "eval/memorized_clip_score" in m
    assert ("eval/trigger_fraction" in m) == (name.split("-")[0] in ("prss", "pe"))


def test_prss_nearest_on_wen_prompts_without_images(sd15_reduced, data_dirs, tmp_path):
    m = _run([*_model(sd15_reduced), "method=none", "dataset=sdv1_500_memorized", f"dataset.path={data_dirs['wen']}",
              *MEMORIZATION_EVAL, "eval.metrics=[clip_score,detection,trigger]", "guidance=prss",
              "guidance.paraphrases=nearest", "guidance.num_paraphrases=2"], tmp_path / "run")
    assert m["guidance"] == "prss" and "eval/trigger_fraction" in m and m["eval/num_images"] == 3


def test_composed_dp_adaptation_sampled_with_prss(sd15_reduced, data_dirs, tmp_path):
    m = _run([*_model(sd15_reduced), *_style(data_dirs, tmp_path), *FAST_EVAL, "method=dpagg_ti",
              "method.max_steps=2", *DP, "guidance=prss", "guidance.paraphrases=nearest", "guidance.num_paraphrases=2"],
             tmp_path / "run")
    assert (m["method"], m["guidance"]) == ("dpagg_ti", "prss") and float(m["privacy/epsilon"]) <= 8 + 1e-9
    assert "eval/trigger_fraction" in m


def test_sd21_shaped_model_runs_textual_inversion(sd21_reduced, sd15_reduced, data_dirs, tmp_path):
    m = _run([*_model(sd21_reduced, "sd21"), f"model.clip_model={sd15_reduced}/clip", *_style(data_dirs, tmp_path)[:-1],
              *FAST_EVAL, "method=ti", "method.max_steps=2", "method.batch_size=2"], tmp_path / "run")
    assert m["model"] == "sd21" and math.isfinite(m["eval/fid"]) and m["adapt/steps"] == 2
    assert "eval/clip_score" in m
