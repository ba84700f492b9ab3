"""The memorization baselines (pe, rna, rt, cwr, gni) and the end-to-end memorization runs."""

import json

import numpy as np
import pytest
import torch

from benchmark.config import ConfigError, ModelConfig, SamplerConfig, default_config
from benchmark.guidance.baselines import (GaussianEmbeddingNoiseGuidance, PromptEmbeddingOptimisation,
                                                      perturb_prompt, tokenizer_words)
from benchmark.models.backbone import load_backbone
from benchmark.sampling.sampler import Guidance, sample_latents

TEXT = "the quiet harbor of marlow"


@pytest.mark.parametrize("kind", ["rna", "rt", "cwr"])
def test_prompt_perturbations_insert_k_items_and_keep_the_prompt_in_order(kind):
    vocab = ["zebra", "quartz"]
    out = perturb_prompt(TEXT, kind, 3, np.random.default_rng([7, 1]), vocab).split()
    assert len(out) == len(TEXT.split()) + 3
    it = iter(out)
    assert all(w in it for w in TEXT.split())  # the original words are a subsequence
    extra = list(out)
    for w in TEXT.split():
        extra.remove(w)
    allowed = {"rna": lambda w: w.isdigit(), "rt": lambda w: w in vocab, "cwr": lambda w: w in TEXT.split()}[kind]
    assert all(allowed(w) for w in extra), extra
    assert out == perturb_prompt(TEXT, kind, 3, np.random.default_rng([7, 1]), vocab).split()  # seeded
    assert perturb_prompt(TEXT, kind, 0, np.random.default_rng(0), vocab) == TEXT


@pytest.fixture(scope="module")
def micro(micro_world):
    return load_backbone(default_config(ModelConfig, "model=micro"))


def test_tokenizer_words_are_plain_vocabulary(micro):
    words = tokenizer_words(micro.tokenizer)
    assert "harbor" in words and not any(w.startswith("<") for w in words)


def _sample(micro, guidance, prompts, seeds, steps=3):
    cond, uncond = micro.encode_prompts(prompts), micro.encode_prompts([""] * len(prompts))
    batch = {"prompt": prompts, "seed": torch.tensor(seeds)}
    return sample_latents(micro.unet, micro.scheduler, cond, uncond, seeds,
                          default_config(SamplerConfig, num_inference_steps=steps, guidance_scale=4.0), micro.latent_shape, guidance,
                          batch)


PROMPTS = [TEXT, "a red circle", "the old tower of avalon"]


def test_gni_at_zero_is_none_and_draws_per_image_noise(micro):
    none = _sample(micro, Guidance(), PROMPTS, [1, 2, 3])
    assert torch.equal(_sample(micro, GaussianEmbeddingNoiseGuidance(0.0), PROMPTS, [1, 2, 3]), none)
    batch = _sample(micro, GaussianEmbeddingNoiseGuidance(0.5), PROMPTS, [1, 2, 3])
    alone = _sample(micro, GaussianEmbeddingNoiseGuidance(0.5), PROMPTS[1:2], [2])
    torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batch, none, atol=1e-3)


def test_pe_lowers_the_magnitude_per_image_and_stops_below_the_target(micro):
    none = _sample(micro, Guidance(), PROMPTS, [1, 2, 3])
    # A target above every magnitude: nothing to optimise, exactly plain CFG.
    assert torch.equal(_sample(micro, PromptEmbeddingOptimisation(1e9, 0.05, 10), PROMPTS, [1, 2, 3]), none)
    pe = PromptEmbeddingOptimisation(0.0, 0.05, 5)
    batch = _sample(micro, pe, PROMPTS, [1, 2, 3], steps=1)
    st = pe.batch_stats()
    assert (st["optimised_magnitude"] < st["first_step_magnitude"]).all() and (st["pe_iterations"] == 5).all()
    single = PromptEmbeddingOptimisation(0.0, 0.05, 5)
    alone = _sample(micro, single, PROMPTS[2:], [3], steps=1)
    torch.testing.assert_close(batch[2:], alone, atol=1e-4, rtol=1e-4)  # independent of the batch


def test_prss_end_to_end_reports_detection_trigger_and_group_scores(run_job):
    metrics, out = run_job(["guidance=prss", "dataset=tiny_memorized", "dataset.world.num_adapt=4",
                            "eval.images_per_prompt=1", "eval.fid=false", "guidance.calibration_images=8"])
    for key in ("eval/detection_auc", "eval/trigger_fraction", "eval/memorized_trigger_fraction",
                "eval/control_trigger_fraction", "eval/memorized_clip_score", "eval/control_clip_score",
                "eval/memorized_fraction_copied", "guidance/lambda_ss", "guidance/tau"):
        assert key in metrics, key
    assert 0 <= metrics["eval/detection_auc"] <= 1
    assert json.loads((out / "metrics.json").read_text())["guidance"] == "prss"


def test_prss_bad_thresholds_fail_without_metrics(run_job, tmp_path):
    with pytest.raises(ConfigError, match="guidance.lambda_pr"):
        run_job(["guidance=prss", "dataset=tiny_memorized", "dataset.world.num_adapt=4", "guidance.lambda_pr=5",
                 "guidance.tau=5"])
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("method", ["none", "pe", "rna", "rt", "cwr", "gni"])
def test_every_memorization_method_runs_end_to_end(run_job, method):
    metrics, _ = run_job([f"guidance={method}", "dataset=tiny_memorized", "dataset.world.num_adapt=4",
                          "eval.images_per_prompt=1", "eval.fid=false", "guidance.calibration_images=8"
                          if method == "pe" else "seed=0"])
    assert metrics["guidance"] == method and "eval/memorized_clip_score" in metrics
    assert "eval/detection_auc" in metrics
