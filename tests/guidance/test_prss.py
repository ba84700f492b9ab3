"""PRSS: the PR combination, the SS rule, bit-for-bit equality with `none`, batching, bad input."""

import json

import pytest
import torch

from benchmark.config import ConfigError
from benchmark.data.types import DatasetError
from benchmark.guidance.prss import PRSSGuidance, prompt_reanchoring, select_candidate
from benchmark.sampling.sampler import Guidance
from tests.guidance.helpers import guidance_method
from tests.sampling.helpers import CountingUNet, micro_backbone, sample, sampler


def _eps_with_magnitude(eps_u, direction, m):
    return eps_u + direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * m


def test_pr_equals_cfg_at_lambda_pr_and_full_reanchoring_at_tau():
    g = torch.Generator().manual_seed(0)
    eps_u, eps_p, d = (torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64) for _ in range(3))
    s, lam, tau = 7.5, 3.0, 5.0
    # m = lambda_pr (and below): plain CFG with e_ss.
    for m in (lam, 1.0):
        eps_ss = _eps_with_magnitude(eps_u, d, m)
        out, got_m = prompt_reanchoring(eps_u, eps_p, eps_ss, s, lam, tau)
        torch.testing.assert_close(got_m, torch.full((3,), m, dtype=torch.float64))
        torch.testing.assert_close(out, eps_u + s * (eps_ss - eps_u))
    # Just above lambda_pr the formula branch takes over continuously.
    eps_ss = _eps_with_magnitude(eps_u, d, lam + 1e-9)
    torch.testing.assert_close(prompt_reanchoring(eps_u, eps_p, eps_ss, s, lam, tau)[0], eps_u + s * (eps_ss - eps_u))
    # m >= tau: full re-anchoring on the original prompt.
    for m in (tau, 9.0):
        eps_ss = _eps_with_magnitude(eps_u, d, m)
        torch.testing.assert_close(prompt_reanchoring(eps_u, eps_p, eps_ss, s, lam, tau)[0],
                                   eps_p + s * (eps_ss - eps_p))
    # In between, a hand computation of s_pr: c = (7.5*3 - 5)/6.5, s_pr = 7.5 (4 - c)/(5 - c).
    eps_ss = _eps_with_magnitude(eps_u, d, 4.0)
    c = (s * lam - tau) / (s - 1)
    s_pr = s * (4.0 - c) / (tau - c)
    assert 1 < s_pr < s
    expected = eps_p + s_pr * (eps_ss - eps_p) + (s - s_pr) * (eps_ss - eps_u)
    torch.testing.assert_close(prompt_reanchoring(eps_u, eps_p, eps_ss, s, lam, tau)[0], expected)


def test_ss_selection_rules():
    t = torch.tensor
    assert select_candidate(t([1.0, 0.1, 0.2]), 1.0) == 0  # original at the threshold: kept
    assert select_candidate(t([0.5, 3.0]), 1.0) == 0
    assert select_candidate(t([2.0, 1.5, 0.9, 0.3]), 1.0) == 2  # first paraphrase at or below, not the smallest
    assert select_candidate(t([2.0, 1.5, 1.0, 0.3]), 1.0) == 2  # "at or below" includes equality
    assert select_candidate(t([2.0, 3.0, 1.5, 1.7]), 1.0) == 2  # none below: arg-min
    assert select_candidate(t([1.2, 3.0, 1.5]), 1.0) == 0  # arg-min may be the original itself


def test_bad_thresholds_and_guidance_scale_are_config_errors_before_loading():
    bad = guidance_method("prss", "guidance.lambda_ss=1.0", "guidance.lambda_pr=5.0", "guidance.tau=5.0")
    with pytest.raises(ConfigError, match=r"guidance.lambda_pr .* must be below\s+guidance.tau"):
        bad.check(sampler())  # both absolute: refused before anything is calibrated
    guidance_method("prss", "guidance.lambda_pr=5", "guidance.tau=5",
                    "guidance.prompt_reanchoring=false").check(sampler())  # PR off: unused
    with pytest.raises(ConfigError, match="guidance_scale > 1"):
        guidance_method("prss").check(sampler(guidance_scale=1.0))
    guidance_method("prss", "guidance.prompt_reanchoring=false").check(sampler(guidance_scale=1.0))
    for key, value in (("paraphrases", "llm"), ("num_paraphrases", 0), ("candidate_chunk", -1),
                       ("calibration_images", 0), ("lambda_ss", "fast")):
        with pytest.raises(ConfigError, match=f"guidance.{key}"):
            guidance_method("prss", f"guidance.{key}={value}").check(sampler())


# ---- on the micro world's UNet -------------------------------------------------------------

@pytest.fixture(scope="module")
def micro(micro_world):
    return micro_backbone()


PROMPTS = ["the quiet harbor of marlow", "a red circle on a white background", "the old tower of avalon",
           "a blue star", "the misty garden of halden", "a green square"]
PARAS = {p: [f"a photo of {p}", f"{p} , far away", "a yellow cross"] for p in PROMPTS}


def _sample(micro, guidance, prompts=PROMPTS, seeds=None, steps=4, unet=None):
    seeds = seeds or list(range(10, 10 + len(prompts)))
    return sample(micro, guidance, prompts, seeds, steps, [PARAS.get(p, []) for p in prompts], unet)


def _prss(micro, lambda_ss, **kw):
    # Tiny PR thresholds: full re-anchoring whenever triggered.
    kw = {"lambda_pr": 0.0, "tau": 1e-3, "semantic_search": True, "prompt_reanchoring": True,
          "candidate_batch_size": 64, "candidate_chunk": 4, **kw}
    return PRSSGuidance(micro.encode_prompts, lambda item: list(item.paraphrases), lambda_ss, **kw)


def test_untriggered_prompts_are_sampled_bit_for_bit_as_none(micro):
    none = _sample(micro, Guidance())
    never = _sample(micro, _prss(micro, float("inf")))
    assert torch.equal(never, none)
    # A mixed batch: the threshold splits the prompts; the untriggered ones still match `none` exactly.
    g = Guidance()
    _sample(micro, g, steps=1)
    m0 = g.batch_stats()["first_step_magnitude"]
    mixed = _prss(micro, float(m0.median()))
    out = _sample(micro, mixed)
    trig = mixed.batch_stats()["triggered"]
    assert 0 < trig.sum() < len(PROMPTS)
    assert torch.equal(out[~trig], none[~trig])
    assert not torch.allclose(out[trig], none[trig])


def test_ss_only_samples_the_chosen_candidate_like_none_and_batches_unet_calls(micro):
    ss_only = _prss(micro, -1.0, prompt_reanchoring=False)  # everything triggers
    counting = CountingUNet(micro.unet)
    seeds = list(range(10, 16))
    out = _sample(micro, ss_only, seeds=seeds, unet=counting)
    b = len(PROMPTS)
    # First step: the plain CFG call, then all 3 paraphrases of all 6 prompts in one call; then one call a step.
    assert counting.calls == [2 * b, 3 * b, 2 * b, 2 * b, 2 * b]
    chosen = ss_only.batch_stats()["chosen_candidate"]
    texts = [([p] + PARAS[p])[k] for p, k in zip(PROMPTS, chosen.tolist())]
    reference = _sample(micro, Guidance(), prompts=texts, seeds=seeds)
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)


def test_pr_uses_one_unet_call_per_step_with_three_predictions(micro):
    g = Guidance()
    _sample(micro, g, steps=1)
    m0 = g.batch_stats()["first_step_magnitude"]
    prss = _prss(micro, float(m0.median()))
    counting = CountingUNet(micro.unet)
    _sample(micro, prss, steps=3, unet=counting)
    t = int(prss.batch_stats()["triggered"].sum())
    assert counting.calls == [12, 3 * t, 12 + t, 12 + t]
    assert (prss.batch_stats()["reanchored_steps"][prss.batch_stats()["triggered"]] == 3).all()


def test_empty_paraphrase_list_names_the_prompt(micro):
    prss = PRSSGuidance(micro.encode_prompts, lambda item: [], -1.0, 0.0, 1.0, True, True, 64, 4)
    with pytest.raises(DatasetError, match="the quiet harbor of marlow.*paraphrase list is empty"):
        _sample(micro, prss, steps=1)


def test_nearest_neighbour_paraphrases_rank_the_pool_by_text_embedding(micro):
    from benchmark.guidance.prss import CaptionPoolSearch

    pool = ["the quiet harbor of marlow", "a photo of the calm port of marlow", "a red circle", "a blue star",
            "the old tower of avalon"]
    search = CaptionPoolSearch(micro, pool, k=3)
    got = search("the quiet harbor of marlow")
    assert len(got) == 3 and "the quiet harbor of marlow" not in got
    # Independent ranking: cosine similarity of the encoder's pooled outputs, computed here.
    with torch.no_grad():
        pooled = micro.text_encoder(micro.tokenize(pool)).pooler_output
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    sims = (pooled[1:] @ pooled[0]).tolist()
    expected = [p for _, p in sorted(zip(sims, pool[1:]), reverse=True)][:3]
    assert got == expected


@pytest.mark.slow  # an end-to-end job: keeps the default suite within 3 minutes
def test_prss_with_nearest_neighbour_paraphrases_runs_end_to_end(run_job):
    metrics, out = run_job(["method=none", "guidance=prss", "dataset=tiny_memorized", "dataset.world.num_adapt=4",
                            "eval.images_per_prompt=1", "eval=memorization", "guidance.paraphrases=nearest",
                            "guidance.num_paraphrases=4", "guidance.lambda_ss=q0.5", "guidance.calibration_images=8"])
    assert metrics["eval/trigger_fraction"] > 0
    rows = [json.loads(line) for line in (out / "images" / "index.jsonl").read_text().splitlines()]
    # Triggered images chose a paraphrase (>= 1) or kept the original as the arg-min (0); untriggered keep 0.
    assert all(r["chosen_candidate"] == 0 for r in rows if not r["triggered"])
    assert any(r["chosen_candidate"] > 0 for r in rows if r["triggered"])
    assert sum(r["triggered"] for r in rows) / len(rows) == pytest.approx(metrics["eval/trigger_fraction"])


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="tinyworld-v5's memorized and control captions overlap in first-step "
                   "magnitude (AUC 0.73: its named flat background sets m_T, results/world_detection_diagnosis.md), "
                   "so PRSS at its default thresholds rarely triggers; a world property to restore (the unshipped v6 "
                   "does: results/world_v6_attempt.md), not a PRSS change")
def test_tiny_world_detection_and_prss_mitigation(run_job, tmp_path):
    common = ["model=tiny", "dataset=tiny_memorized", "dataset.world.num_adapt=16", "eval.images_per_prompt=1",
              "eval=memorization", "eval.sampler.num_inference_steps=25"]
    none, _ = run_job(["method=none", *common], tmp_path / "none")
    prss, _ = run_job(["method=none", "guidance=prss", *common], tmp_path / "prss")
    assert none["eval/detection_auc"] >= 0.9
    assert none["eval/memorized_fraction_copied"] >= 0.8
    assert prss["eval/memorized_fraction_copied"] <= none["eval/memorized_fraction_copied"] - 0.5
    assert prss["eval/memorized_trigger_fraction"] == 1.0 and prss["eval/control_trigger_fraction"] <= 0.25


def test_chunked_candidate_search_chooses_as_the_full_search(micro):
    g = Guidance()
    _sample(micro, g, steps=1)
    m0 = g.batch_stats()["first_step_magnitude"]
    lam = float(m0.quantile(0.3))
    full = _prss(micro, lam, candidate_chunk=100)
    one = _prss(micro, lam, candidate_chunk=1)
    a, b = _sample(micro, full), _sample(micro, one)
    assert torch.equal(full.batch_stats()["chosen_candidate"], one.batch_stats()["chosen_candidate"])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
