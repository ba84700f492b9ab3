"""Bright Ending mitigation: a mask of ones gives PE / PRSS bit for bit; the mask decides; cost; bad config."""

import json
from types import SimpleNamespace

import pytest
import torch

from benchmark.config import ConfigError
from benchmark.guidance.bright_ending import PE_STATS, PRSS_STATS, BrightEndingGuidance
from benchmark.guidance.pe import PromptEmbeddingOptimisation
from benchmark.guidance.prss import PRSSGuidance
from benchmark.sampling import attention
from benchmark.sampling.attention import EndTokenCapture, MaskRecordingCFG
from benchmark.sampling.sampler import Guidance
from tests.guidance.helpers import guidance_method
from tests.sampling.helpers import micro_backbone, sample, sampler

PROMPTS = ["the quiet harbor of marlow", "a red circle on a white background", "the old tower of avalon"]
PARAS = {p: [f"a photo of {p}", f"{p} , far away", "a yellow cross"] for p in PROMPTS}
SEEDS = [10, 11, 12]
STEPS = 2


@pytest.fixture(scope="module")
def micro(micro_world):
    return micro_backbone()


@pytest.fixture()
def ones_mask(monkeypatch):
    """Every captured BE mask is ones (the capture itself still runs)."""
    real = attention.AttentionRecord.mask

    def ones(self, rows, token_index, latent_hw, call=0):
        real(self, rows, token_index, latent_hw, call)
        return torch.ones(len(rows), 1, *latent_hw)

    monkeypatch.setattr(attention.AttentionRecord, "mask", ones)


def _magnitudes(micro):
    rule = MaskRecordingCFG(EndTokenCapture(micro.tokenizer))
    sample(micro, rule, PROMPTS, SEEDS, STEPS)
    return rule.batch_stats()


def _prss(micro, lambda_ss, magnitude=None):
    kw = {} if magnitude is None else {"ss_magnitude": magnitude}
    return PRSSGuidance(micro.encode_prompts, lambda item: list(item.paraphrases), lambda_ss, 0.0, 1e-3, True, True,
                        64, 4, **kw)


def _one_by_one(micro, rule):
    """Each prompt in its own batch (so a batch triggers wholly or not at all): latents and stats."""
    latents, stats = [], []
    for p, s in zip(PROMPTS, SEEDS):
        latents.append(sample(micro, rule, [p], [s], STEPS, [PARAS[p]]))
        stats.append(rule.batch_stats())
    return torch.cat(latents), {k: torch.cat([st[k] for st in stats]) for k in stats[0]}


def _assert_same(be, base, keys):
    (be_lat, be_stats), (base_lat, base_stats) = be, base
    assert torch.equal(be_lat, base_lat)
    for key in keys:
        assert torch.equal(be_stats[key], base_stats[key]), key


def test_prss_be_with_a_mask_of_ones_is_prss_bit_for_bit(micro, ones_mask):
    lam = float(_magnitudes(micro)["first_step_magnitude"].median())
    be = BrightEndingGuidance("prss_be", EndTokenCapture(micro.tokenizer), lam,
                              lambda magnitude: _prss(micro, lam, magnitude), PRSS_STATS)
    got, want = _one_by_one(micro, be), _one_by_one(micro, _prss(micro, lam))
    assert 0 < int(want[1]["triggered"].sum()) < len(PROMPTS)  # both kinds of image are compared
    _assert_same(got, want, ["first_step_magnitude", *PRSS_STATS])
    assert torch.equal(got[1]["first_step_masked_magnitude"], got[1]["first_step_magnitude"])
    # A whole batch that triggers: re-sampled together, still the same bits.
    be_all = BrightEndingGuidance("prss_be", EndTokenCapture(micro.tokenizer), -1.0,
                                  lambda magnitude: _prss(micro, -1.0, magnitude), PRSS_STATS)
    paras = [PARAS[p] for p in PROMPTS]
    assert torch.equal(sample(micro, be_all, PROMPTS, SEEDS, STEPS, paras),
                       sample(micro, _prss(micro, -1.0), PROMPTS, SEEDS, STEPS, paras))


def test_pe_be_with_a_mask_of_ones_is_pe_bit_for_bit(micro, ones_mask):
    target = float(_magnitudes(micro)["first_step_magnitude"].median())
    be = BrightEndingGuidance("pe_be", EndTokenCapture(micro.tokenizer), target,
                              lambda magnitude: PromptEmbeddingOptimisation(target, 0.05, 3, magnitude), PE_STATS)
    got, want = _one_by_one(micro, be), _one_by_one(micro, PromptEmbeddingOptimisation(target, 0.05, 3))
    assert 0 < int(want[1]["triggered"].sum()) < len(PROMPTS)
    trig = want[1]["triggered"]
    assert torch.equal(got[0], want[0])
    for key in ("triggered", "pe_iterations"):
        assert torch.equal(got[1][key], want[1][key]), key
    # Re-sampled images: PE's own numbers. Untriggered ones: PE reports its loss from a batch of
    # conditional rows only, BE the first pass's CFG call: the same value up to float batching.
    assert torch.equal(got[1]["optimised_magnitude"][trig], want[1]["optimised_magnitude"][trig])
    torch.testing.assert_close(got[1]["optimised_magnitude"], want[1]["optimised_magnitude"], rtol=1e-5, atol=0)
    torch.testing.assert_close(got[1]["first_step_magnitude"], want[1]["first_step_magnitude"], rtol=1e-5, atol=0)


def test_the_masked_magnitude_decides_and_only_triggered_images_are_sampled_twice(micro):
    stats = _magnitudes(micro)
    masked = stats["first_step_masked_magnitude"]
    lam = float(masked.median())
    be = BrightEndingGuidance("prss_be", EndTokenCapture(micro.tokenizer), lam,
                              lambda magnitude: _prss(micro, lam, magnitude), PRSS_STATS)
    rows = []
    hook = micro.unet.register_forward_pre_hook(lambda module, args: rows.append(len(args[0])))
    try:
        out = sample(micro, be, PROMPTS, SEEDS, STEPS, [PARAS[p] for p in PROMPTS])
    finally:
        hook.remove()
    got = be.batch_stats()
    assert torch.equal(got["triggered"], masked > lam) and 0 < int(got["triggered"].sum()) < len(PROMPTS)
    assert torch.equal(got["first_step_masked_magnitude"], masked)
    t, b = int(got["triggered"].sum()), len(PROMPTS)
    # First pass: one CFG call a step; then PRSS on the t triggered images only.
    assert rows[:STEPS] == [2 * b] * STEPS and sum(rows[STEPS:]) <= t * (2 + 3) + (STEPS - 1) * 3 * t
    none = sample(micro, Guidance(), PROMPTS, SEEDS, STEPS)
    untrig = ~got["triggered"]
    assert torch.equal(out[untrig], none[untrig]) and not torch.allclose(out[~untrig], none[~untrig])


def test_bad_options_and_a_unet_without_cross_attention_are_config_errors():
    for name in ("pe_be", "prss_be"):
        for key, value in (("end_token", "bos"), ("attention_layers", "up")):
            with pytest.raises(ConfigError, match=f"guidance.{key}"):
                guidance_method(name, f"guidance.{key}={value}").check(sampler())
        guidance_method(name).check(sampler())
        no_cross = SimpleNamespace(name="plain", unet=torch.nn.Conv2d(4, 4, 1))
        with pytest.raises(ConfigError, match=f"guidance={name} .*cross-attention"):
            guidance_method(name).check_backbone(no_cross)


@pytest.mark.slow  # an end-to-end job: keeps the default suite within 3 minutes
def test_a_plain_run_reports_masked_detection_in_metrics_json(run_job, tmp_path):
    common = ["method=none", "dataset=tiny_memorized", "dataset.world.num_adapt=4", "eval.images_per_prompt=1",
              "eval=memorization"]
    metrics, out = run_job([*common, "guidance=none"], tmp_path / "none")
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("eval/detection_auc", "eval/detection_masked_auc", "eval/detection_masked_magnitude_memorized",
                "eval/detection_masked_magnitude_control"):
        assert key in saved, key
    rows = [json.loads(line) for line in (out / "images" / "index.jsonl").read_text().splitlines()]
    assert all("first_step_masked_magnitude" in r for r in rows)


@pytest.mark.slow
def test_prss_be_run_keeps_the_plain_images_it_does_not_trigger_on(run_job, tmp_path):
    common = ["method=none", "dataset=tiny_memorized", "dataset.world.num_adapt=4", "eval.images_per_prompt=1",
              "eval=memorization"]
    _, out = run_job([*common, "guidance=none"], tmp_path / "none")
    rows = [json.loads(line) for line in (out / "images" / "index.jsonl").read_text().splitlines()]
    be, out_be = run_job([*common, "guidance=prss_be", "guidance.calibration_images=8"], tmp_path / "prss_be")
    assert be["guidance"] == "prss_be" and "eval/detection_masked_auc" in be and "eval/trigger_fraction" in be
    # Untriggered images are the plain run's images (the first pass is plain CFG).
    be_rows = [json.loads(line) for line in (out_be / "images" / "index.jsonl").read_text().splitlines()]
    for r, r_be in zip(rows, be_rows):
        if not r_be["triggered"]:
            assert (out / "images" / r["file"]).read_bytes() == (out_be / "images" / r_be["file"]).read_bytes()


@pytest.mark.slow
def test_pe_be_runs_end_to_end_under_lightning_inference_mode(run_job, tmp_path):
    # PE differentiates its masked loss outside Lightning's inference mode: the masks must allow it.
    metrics, _ = run_job(["method=none", "dataset=tiny_memorized", "dataset.world.num_adapt=4",
                          "eval.images_per_prompt=1", "eval=memorization", "guidance=pe_be",
                          "guidance.calibration_images=8", "guidance.target_loss=q0.5", "guidance.max_iterations=2"])
    assert metrics["guidance"] == "pe_be" and metrics["eval/trigger_fraction"] > 0
