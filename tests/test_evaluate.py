"""The evaluator: configured metrics in order, values equal to direct computations, declarations complete."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from benchmark.config import ConfigError, DatasetConfig, EvalConfig, ModelConfig, WorldSourceConfig, default_config
from benchmark.datasets import load_dataset
from benchmark.metrics import alignment, concept, detection, fidelity, memorization
from benchmark.metrics.base import Metric, MetricKey, declared_keys, get_metric, metric_names, register_metric
from benchmark.metrics.catalog import JUDGED_ATTRIBUTES
from benchmark.metrics.encoders import ClipImageFeatures, load_clip
from benchmark.metrics.evaluate import Evaluator, build_metrics
from benchmark.sampling.generations import Generations

ALL = ["fidelity", "clip_score", "concept", "memorization", "detection", "trigger"]
MICRO = default_config(ModelConfig, "model=micro")


def _generations(data, folder: Path, n: int = 40) -> Generations:
    """Random images, every third one an exact copy of its prompt's ground truth, with guidance stats."""
    g = torch.Generator().manual_seed(0)
    index = [i % len(data.prompts) for i in range(n)]
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    for k in range(0, n, 3):
        images[k] = data.adapt.images[data.prompts[index[k]].ground_truth[0]]
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
    stats = {"first_step_magnitude": torch.rand(n, generator=g), "triggered": torch.rand(n, generator=g) > 0.5}
    return Generations(images, index, [data.prompts[i].text() for i in index], folder, stats)


@pytest.fixture(scope="module")
def memorized():
    return load_dataset(default_config(DatasetConfig, "dataset=tiny_memorized", name="mem",
                                       world=default_config(WorldSourceConfig, "dataset=tiny_memorized", num_adapt=4)), 32)


def test_evaluator_equals_the_direct_computation_of_every_metric(tmp_path, micro_world, memorized):
    data = memorized
    gen = _generations(data, tmp_path / "images")
    got = Evaluator(MICRO, default_config(EvalConfig, kid_subset_size=6), micro_world, seed=3)(gen, data)

    model, processor = load_clip(micro_world / "clip")
    feats = ClipImageFeatures(model, processor.image_processor.image_mean, processor.image_processor.image_std)
    gf = fidelity.folder_features(gen.folder, feats, torch.device("cpu"))
    rf = fidelity.image_features(data.heldout.images, feats, torch.device("cpu"))
    fk = fidelity.fid_kid(gf, rf, 6, seed=3)
    original = [data.prompts[i].text() for i in gen.prompt_index]
    mem = [k for k, i in enumerate(gen.prompt_index) if data.prompts[i].memorized]
    ctl = [k for k, i in enumerate(gen.prompt_index) if data.prompts[i].memorized is False]
    score = lambda sel: alignment.clip_score(gen.images[sel], [original[k] for k in sel],  # noqa: E731
                                             lambda: (model, processor))
    from benchmark.world.judge import load_judge

    judged = concept.attribute_accuracy(gen.images, [data.prompts[i].attributes for i in gen.prompt_index],
                                        load_judge(micro_world))
    d = memorization.PixelCopyDescriptor()
    own = memorization.max_similarity(gen.images, data.adapt.images, d,
                                      [data.prompts[i].ground_truth for i in gen.prompt_index])
    trig = gen.stats["triggered"].float()
    expected = {
        "eval/num_images": 40, "eval/fid": fk["fid"], "eval/kid": fk["kid"],
        "eval/clip_score": score(list(range(40))), "eval/memorized_clip_score": score(mem),
        "eval/control_clip_score": score(ctl), **{f"eval/{k}": v for k, v in judged.items()},
        **memorization.memorization_summary(memorization.max_similarity(gen.images, data.adapt.images, d), 0.75,
                                            "eval/adapt_set"),
        **memorization.memorization_summary(own[mem], 0.75, "eval/memorized"),
        **memorization.memorization_summary(own[ctl], 0.75, "eval/control"),
        **detection.detection_metrics(gen.stats["first_step_magnitude"], gen.prompt_index,
                                      [p.memorized for p in data.prompts]),
        "eval/trigger_fraction": float(trig.mean()), "eval/memorized_trigger_fraction": float(trig[mem].mean()),
        "eval/control_trigger_fraction": float(trig[ctl].mean()),
    }
    assert list(got) == list(expected)  # the order of eval.metrics, keys as metrics.json has always had them
    assert got == expected
    # The copies are found: 14 of 40 images are exact ground-truth copies, of 16 memorized and 4 control prompts.
    assert got["eval/adapt_set_fraction_copied"] == pytest.approx(14 / 40) and ctl and mem


def test_only_the_configured_metrics_run_in_order_and_inapplicable_ones_are_skipped(tmp_path, memorized, caplog):
    gen = _generations(memorized, tmp_path / "images")
    del gen.stats["triggered"]
    # A real model's config without a CLIP model (and no world): no judge, no CLIP score.
    real = default_config(ModelConfig, "model=sd15", name="real", pretrained="x", resolution=32, clip_model=None)
    with caplog.at_level("INFO"):
        got = Evaluator(real, default_config(EvalConfig, metrics=["trigger", "detection", "concept", "clip_score"]), None, 0)(
            gen, memorized)
    assert list(got) == ["eval/num_images", "eval/detection_magnitude_memorized",
                         "eval/detection_magnitude_control", "eval/detection_auc"]
    text = caplog.text
    assert "trigger skipped: the guidance reported no trigger decisions" in text
    assert "concept skipped: model 'real' is not an offline world" in text
    assert "clip_score skipped: model 'real' has no CLIP model" in text


def test_unknown_or_repeated_metric_names_are_config_errors_listing_the_choices():
    with pytest.raises(ConfigError, match="unknown metric 'fid'; choose from fidelity, clip_score, concept"):
        Evaluator(MICRO, default_config(EvalConfig, metrics=["fid"]), None, 0)
    with pytest.raises(ConfigError, match="more than once"):
        build_metrics(["trigger", "trigger"])
    assert metric_names()[:6] == ALL and [type(m) for m in build_metrics(ALL)] == [get_metric(n) for n in ALL]


def test_undeclared_keys_are_refused_and_keys_are_spelled_once(memorized, tmp_path, monkeypatch):
    from benchmark.metrics import base

    monkeypatch.setattr(base, "_METRICS", dict(base._METRICS))  # the test's metrics leave no trace
    class Loose(Metric):
        name = "test_loose"
        keys = (MetricKey("eval/test_loose", True, "declared"),)

        def __call__(self, gen, data, context):
            return {"eval/test_loose": 1.0, "eval/typo": 2.0}

    register_metric(Loose)
    with pytest.raises(RuntimeError, match=r"undeclared keys \['eval/typo'\]"):
        Evaluator(MICRO, default_config(EvalConfig, metrics=["test_loose"]), None, 0)(
            _generations(memorized, tmp_path / "g"), memorized)

    class Clash(Metric):
        name = "test_clash"
        keys = (MetricKey("eval/fid", True, "again"),)

    with pytest.raises(ValueError, match="'eval/fid', already declared by fidelity"):
        register_metric(Clash)


def test_declarations_match_the_judge_and_give_directions():
    from benchmark.world.architectures import AttributeClassifier

    assert tuple(AttributeClassifier.HEADS) == JUDGED_ATTRIBUTES
    keys = declared_keys()
    assert keys["eval/fid"].summary == "min" and keys["eval/clip_score"].summary == "max"
    assert keys["eval/memorized_fraction_copied"].summary == "min"
    assert keys["eval/detection_magnitude_control"].summary == "last"
    # Besides eval/*, only the membership-inference stage declares keys (privacy/mia_*, all evaluation only).
    assert not [k for k in keys if not k.startswith(("eval/", "privacy/mia_"))]
    assert all(keys[k].reads_private_data for k in keys if k.startswith("privacy/mia_"))


def test_wandb_summaries_are_the_declarations():
    from benchmark.lightning import factories

    defined = {}

    class Spy:
        def define_metric(self, name, summary=None):
            defined[name] = summary

    factories.define_summary_metrics(Spy())
    assert {k: v for k, v in defined.items() if k.startswith(("eval/", "privacy/mia_"))} == {
        k: key.summary for k, key in declared_keys().items()}
    assert defined["privacy/*"] == "last" and not [k for k in defined if k.startswith("memorization/")]


def test_the_rank_device_is_the_strategys(monkeypatch):
    from types import SimpleNamespace

    from benchmark.lightning.distributed import rank_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert rank_device(SimpleNamespace(accelerator="gpu")) == torch.device("cuda", 1)  # this rank's own GPU
    assert rank_device(SimpleNamespace(accelerator="cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert rank_device(SimpleNamespace(accelerator="auto")) == torch.device("cpu")


def test_encoders_load_once_on_the_evaluation_device(micro_world):
    # "meta" stands in for an accelerator: every encoder parameter must end up there.
    context = Evaluator(MICRO, default_config(EvalConfig), micro_world, 0, device="meta").context
    clip = context.clip
    assert context.clip is clip and {p.device.type for p in clip[0].parameters()} == {"meta"}
    assert {p.device.type for p in context.judge.parameters()} == {"meta"}
    assert {b.device.type for b in context.fid_features.buffers()} == {"meta"}


def test_copy_region_measures_copying_of_that_region_alone(tmp_path, micro_world, memorized):
    """Local memorization: the region of the ground truth pasted into noise is a copy there, not overall."""
    import dataclasses

    data = dataclasses.replace(memorized, config=dataclasses.replace(memorized.config, copy_region=[0, 0, 0.5, 0.5]))
    n = 12
    index = [i % len(data.prompts) for i in range(n)]
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    for k in range(n):
        images[k, :, :16, :16] = data.adapt.images[data.prompts[index[k]].ground_truth[0]][:, :16, :16]
    (tmp_path / "images").mkdir()
    gen = Generations(images, index, [data.prompts[i].text() for i in index], tmp_path / "images", {})
    got = Evaluator(MICRO, default_config(EvalConfig, metrics=["memorization"]), micro_world, seed=0)(gen, data)
    mem = [k for k, i in enumerate(index) if data.prompts[i].memorized]
    region = [memorization.crop_region(x, [0, 0, 0.5, 0.5]) for x in (images, data.adapt.images)]
    own = memorization.max_similarity(*region, memorization.PixelCopyDescriptor(),
                                      [data.prompts[i].ground_truth for i in index])
    assert got["eval/memorized_region_similarity_mean"] == pytest.approx(float(own[mem].mean()))
    # A pasted region is a copy there (unless the truth's region is flat: no pattern to copy).
    assert got["eval/memorized_region_fraction_copied"] >= 0.9
    assert got["eval/memorized_fraction_copied"] == 0.0  # the whole image is no copy
    assert memorization.crop_region(images, [0.5, 0.25, 1.0, 0.75]).shape == (n, 3, 16, 16)
    # Without a region, no region keys.
    plain = Evaluator(MICRO, default_config(EvalConfig, metrics=["memorization"]), micro_world, seed=0)(gen, memorized)
    assert not any("region" in k for k in plain)
