"""Membership inference: the loss attacks by hand, the stage end to end, config errors, pooling."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from benchmark.config import ConfigError
from tests.helpers import SMOKE, compose

MIA_ON = "eval.membership_inference.enabled=true"


@pytest.fixture(scope="module")
def micro_ti(micro_world):
    """The micro backbone with a TI row bound under the placeholder, and the smoke dataset."""
    from benchmark.adapt.base import Adaptation
    from benchmark.config import validate_config
    from benchmark.datasets import load_dataset
    from benchmark.models.backbone import load_backbone
    from benchmark.run import bind_embeddings

    run_cfg = validate_config(compose(SMOKE))
    backbone = load_backbone(run_cfg.model, "cpu")
    data = load_dataset(run_cfg.dataset, run_cfg.model.resolution)
    concept = data.config.concept
    _, init = backbone.add_placeholder_tokens([concept.placeholder], concept.initializer_token)
    row = init + 0.5 * torch.randn(init.shape, generator=torch.Generator().manual_seed(7))
    bind_embeddings(backbone, Adaptation(placeholder=concept.placeholder, embeddings={concept.placeholder: row}))
    return backbone, data


def _hand_loss(backbone, image, prompt, t, latent_noise, noise):
    """One image, one draw, written out: v-target from alphas_cumprod, no suite helper."""
    with torch.no_grad():
        dist = backbone.vae.encode(image[None].float() / 127.5 - 1).latent_dist
        latents = (dist.mean + dist.std * latent_noise) * backbone.vae.config.scaling_factor
        a = backbone.scheduler.alphas_cumprod[t].float()
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        assert backbone.scheduler.config.prediction_type == "v_prediction"  # the world's models
        target = a.sqrt() * noise - (1 - a).sqrt() * latents
        ids = backbone.tokenizer([prompt], padding="max_length", max_length=backbone.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
        hidden = backbone.text_encoder(ids)[0]
        pred = backbone.unet(noisy, torch.tensor([t]), encoder_hidden_states=hidden).sample
        return F.mse_loss(pred, target).item()


def test_loss_attack_equals_a_hand_computation_with_the_embedding_bound(micro_ti):
    from benchmark.metrics.membership import LossAttackDraws, attack_prompts, loss_scores

    backbone, data = micro_ti
    images, captions = data.adapt.images[:2], data.adapt.captions[:2]
    template = data.config.concept.templates[0]
    prompts = attack_prompts(captions, template, data.config.concept.placeholder)
    assert prompts[0] == f"{captions[0]} in the style of <S*>"
    draws = LossAttackDraws.make([50, 400], 1, backbone.latent_shape, seed=11)
    scores = loss_scores(backbone, images, prompts, draws, torch.device("cpu"), batch_size=3)  # chunks split images
    for i in range(2):
        hand = [_hand_loss(backbone, images[i], prompts[i], int(draws.timesteps[k]), draws.latent_noise[k:k + 1],
                           draws.noise[k:k + 1]) for k in range(2)]
        assert scores[i].item() == pytest.approx(-sum(hand) / 2, rel=1e-4)
    # The draws are a fixed function of the public seed; the score depends on the bound row.
    again = LossAttackDraws.make([50, 400], 1, backbone.latent_shape, seed=11)
    assert torch.equal(again.noise, draws.noise) and torch.equal(again.latent_noise, draws.latent_noise)
    without = loss_scores(backbone, images, attack_prompts(captions, template, "painting"), draws,
                          torch.device("cpu"))
    assert not torch.allclose(without, scores)


def test_calibrated_attack_is_the_pretrained_loss_minus_the_adapted_loss_for_ti(micro_ti):
    from benchmark.metrics.membership import (LossAttackDraws, attack_prompts, calibrated_scores, loss_scores,
                                              reference_loss_scores)

    backbone, data = micro_ti
    concept = data.config.concept
    images, captions = data.adapt.images[:2], data.adapt.captions[:2]
    template = concept.templates[0]
    prompts = attack_prompts(captions, template, concept.placeholder)
    draws = LossAttackDraws.make([50, 400], 1, backbone.latent_shape, seed=11)
    table = backbone.text_encoder.get_input_embeddings().weight
    bound = table.detach().clone()
    adapted = loss_scores(backbone, images, prompts, draws, torch.device("cpu"), batch_size=3)
    reference = reference_loss_scores(backbone, images, prompts, draws, torch.device("cpu"), 3,
                                      [concept.placeholder], concept.initializer_token)
    calibrated = calibrated_scores(adapted, reference)
    assert torch.equal(table, bound)  # the learned row is still bound: the swap is on token ids
    # Independently: the pretrained model reads the initializer WORD (the only row this backbone
    # adds is the placeholder's, and this template tokenizes the word as one token in its place).
    word_prompts = attack_prompts(captions, template, concept.initializer_token)
    for i in range(2):
        draw = [(int(draws.timesteps[k]), draws.latent_noise[k:k + 1], draws.noise[k:k + 1]) for k in range(2)]
        ref_loss = sum(_hand_loss(backbone, images[i], word_prompts[i], *d) for d in draw) / 2
        adapted_loss = sum(_hand_loss(backbone, images[i], prompts[i], *d) for d in draw) / 2
        # Float32 rounding of batched vs single kernels is ~1e-7 on losses ~1; the row moves them ~1e-5.
        assert calibrated[i].item() == pytest.approx(ref_loss - adapted_loss, rel=0, abs=1e-6)
        assert abs(ref_loss - adapted_loss) > 1e-5  # well above the tolerance: the check can fail


def test_calibrated_attack_disables_a_lora_adapter_for_the_reference_and_restores_it(micro_world):
    from peft import LoraConfig

    from benchmark.adapt.dpsgd.lora import LORA_TARGETS
    from benchmark.config import validate_config
    from benchmark.datasets import load_dataset
    from benchmark.metrics.membership import (LossAttackDraws, attack_prompts, binds_anything, loss_scores,
                                              reference_loss_scores)
    from benchmark.models.backbone import load_backbone

    run_cfg = validate_config(compose(SMOKE))
    backbone = load_backbone(run_cfg.model, "cpu")
    data = load_dataset(run_cfg.dataset, run_cfg.model.resolution)
    concept, cpu = data.config.concept, torch.device("cpu")
    images = data.adapt.images[:2]
    prompts = attack_prompts(data.adapt.captions[:2], concept.templates[0], concept.initializer_token)  # LoRA's
    draws = LossAttackDraws.make([50, 400], 1, backbone.latent_shape, seed=11)
    pretrained = loss_scores(backbone, images, prompts, draws, cpu)  # before any adapter: the reference by hand
    assert not binds_anything(backbone, [])
    backbone.unet.add_adapter(LoraConfig(r=2, lora_alpha=2.0, target_modules=list(LORA_TARGETS),
                                         init_lora_weights="gaussian"))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in backbone.unet.named_parameters():
            if "lora_B" in name:  # peft starts B at zero (a no-op adapter): make it change the UNet
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    backbone.unet.requires_grad_(False)  # as the method leaves it; peft's enable_adapters would thaw the adapter
    flags = {name: p.requires_grad for name, p in backbone.unet.named_parameters()}
    assert binds_anything(backbone, [])
    adapted = loss_scores(backbone, images, prompts, draws, cpu)
    reference = reference_loss_scores(backbone, images, prompts, draws, cpu, 64, [], concept.initializer_token)
    assert not torch.allclose(adapted, pretrained, rtol=0, atol=1e-6)
    assert torch.allclose(reference, pretrained, rtol=1e-6, atol=1e-9)
    # Afterwards the adapter is on again and no requires_grad flag moved.
    assert torch.equal(loss_scores(backbone, images, prompts, draws, cpu), adapted)
    assert {name: p.requires_grad for name, p in backbone.unet.named_parameters()} == flags


def test_an_unknown_learned_token_is_refused_not_read_as_the_end_token(micro_ti):
    from benchmark.metrics.membership import reference_prompt_states

    backbone, data = micro_ti
    with pytest.raises(ValueError, match="<never-added>"):
        reference_prompt_states(backbone, ["a"], ["<never-added>"], data.config.concept.initializer_token)


def test_similarity_attack_is_the_max_over_generations(micro_ti):
    from benchmark.metrics.membership import similarity_scores
    from benchmark.metrics.memorization import PixelCopyDescriptor

    _, data = micro_ti
    candidates, gens = data.adapt.images[:4], data.heldout.images[:5]
    gens = torch.cat([gens, candidates[2:3]])  # candidate 2 is copied exactly
    scores = similarity_scores(candidates, gens, PixelCopyDescriptor(), torch.device("cpu"))
    d = PixelCopyDescriptor()
    assert scores[1].item() == pytest.approx((d(candidates[1:2]) @ d(gens).T).max().item(), abs=1e-6)
    assert scores[2].item() == pytest.approx(1.0, abs=1e-5)


def test_a_run_writes_the_evaluation_only_keys_and_the_scores_file(run_job):
    metrics, out = run_job(["method.max_steps=5", MIA_ON])
    evaluation_only = json.loads(metrics["evaluation_only"])
    for attack in ("loss", "loss_calibrated", "similarity"):
        for key in (f"privacy/mia_{attack}_auc", f"privacy/mia_{attack}_auc_low", f"privacy/mia_{attack}_auc_high",
                    f"privacy/mia_{attack}_tpr_at_fpr_1pct", f"privacy/mia_{attack}_tpr_at_fpr_1pct_low",
                    f"privacy/mia_{attack}_tpr_at_fpr_0p1pct_high"):
            assert 0.0 <= metrics[key] <= 1.0 and key in evaluation_only
    assert "privacy/mia_exceeds_dp_bound" not in metrics  # non-private: no bound
    assert metrics["privacy/mia_num_members"] == 8 and metrics["privacy/mia_num_nonmembers"] == 16
    assert metrics["time/mia_s"] > 0 and metrics["job_type"].endswith("-mia")
    on_disk = json.loads((out / "metrics.json").read_text())
    assert set(k for k in on_disk if k.startswith("privacy/mia_")) <= set(json.loads(on_disk["evaluation_only"]))
    lines = (out / "privacy_eval" / "mia_scores.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["evaluation_only"] is True and "WITHOUT differential privacy" in header["warning"]
    assert len(lines) == 1 + 8 + 16 and header["dataset_world_seed"] == 0
    assert header["attacks"] == ["loss", "loss_calibrated", "similarity"]
    # A learned row is bound (method=ti): the calibrated scores are not the raw ones, nor all 0.
    candidates = [json.loads(line) for line in lines[1:]]
    assert any(c["loss_calibrated"] != 0.0 for c in candidates)
    assert any(c["loss_calibrated"] != c["loss"] for c in candidates)


def test_without_a_release_every_calibrated_score_is_exactly_zero(run_job):
    metrics, out = run_job(["method=none", MIA_ON])
    lines = (out / "privacy_eval" / "mia_scores.jsonl").read_text().splitlines()
    candidates = [json.loads(line) for line in lines[1:]]
    assert len(candidates) == 8 + 16 and all(c["loss_calibrated"] == 0.0 for c in candidates)
    assert any(c["loss"] != 0.0 for c in candidates)  # the raw loss attack still scores
    assert metrics["privacy/mia_loss_calibrated_auc"] == 0.5  # every score tied: chance
    assert metrics["privacy/mia_loss_calibrated_tpr_at_fpr_1pct"] == 0.0  # no threshold admits a tie


@pytest.mark.slow
def test_a_dp_run_reports_the_bound_and_the_flag(run_job):
    metrics, _ = run_job(["method=dpsgd_ti", "privacy=dp", "privacy.epsilon=4", "method.epochs=2",
                          "method.batch_size=4", MIA_ON])
    eps, delta = metrics["privacy/epsilon"], metrics["privacy/delta"]
    for attack in ("loss", "loss_calibrated"):
        fpr = metrics[f"privacy/mia_{attack}_fpr_at_fpr_1pct"]
        assert metrics[f"privacy/mia_{attack}_dp_bound_at_fpr_1pct"] == pytest.approx(
            min(1.0, math.exp(eps) * fpr + delta))
    assert metrics["privacy/mia_exceeds_dp_bound"] in (0.0, 1.0)
    assert "privacy/mia_exceeds_dp_bound" in json.loads(metrics["evaluation_only"])


@pytest.mark.parametrize("override,key", [
    ("eval.membership_inference.timesteps=[100,5000]", "eval.membership_inference.timesteps"),
    ("eval.membership_inference.timesteps=[-1]", "eval.membership_inference.timesteps"),
    ("eval.membership_inference.noises_per_timestep=0", "eval.membership_inference.noises_per_timestep"),
    ("eval.membership_inference.batch_size=0", "eval.membership_inference.batch_size"),
])
def test_bad_settings_fail_naming_the_key_before_training(run_job, tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run_job(["method.max_steps=5", MIA_ON, override])
    assert not (tmp_path / "run" / "learned_embeds.safetensors").exists()  # nothing trained
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_dataset_without_held_out_images_is_refused(run_job, tmp_path):
    with pytest.raises(ConfigError, match=r"eval\.membership_inference\.enabled"):
        run_job(["method=none", "dataset=tiny_memorized", "dataset.world.num_adapt=4", "eval=memorization", MIA_ON])
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_experiment_turns_it_on_and_the_default_is_off():
    assert compose(["experiment=dpagg_vs_dpsgd"]).eval.membership_inference.enabled is True
    assert compose([]).eval.membership_inference.enabled is False


def test_the_keys_are_evaluation_only_and_marked_private_in_the_report():
    from benchmark.metrics.catalog import MIA_KEYS, declared_keys
    from benchmark.report.html import visibility
    from benchmark.results import evaluation_only

    record = {k.name: 0.5 for k in MIA_KEYS} | {"privacy/epsilon": 1.0}
    assert evaluation_only(record) == sorted(k.name for k in MIA_KEYS)
    assert all(declared_keys()[k.name].reads_private_data for k in MIA_KEYS)
    assert visibility("privacy/mia_loss_auc") == "privatedata" and visibility("privacy/epsilon") == "release"


def test_the_catalog_declares_every_figure_of_every_attack_the_stage_runs():
    from benchmark.metrics.catalog import MIA_ATTACKS, MIA_KEYS
    from benchmark.privacy.mia_stats import membership_figures

    attacks = [a for a, _ in MIA_ATTACKS]
    assert attacks == ["loss", "loss_calibrated", "similarity"]  # the names of the scores file's columns
    figures, _ = membership_figures({a: [1.0, 2.0] for a in attacks}, {a: [0.0, 1.5] for a in attacks}, 1.0, 1e-5)
    assert set(figures) == {k.name for k in MIA_KEYS}
