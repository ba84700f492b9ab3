"""Prompt-embedding optimisation (Wen et al.): lowers m_T per image, stops at the target, batch-independent."""

import pytest
import torch

from benchmark.config import ConfigError
from benchmark.guidance.pe import PromptEmbeddingOptimisation
from benchmark.sampling.sampler import Guidance
from tests.guidance.helpers import guidance_method
from tests.sampling.helpers import micro_backbone, sample, sampler

PROMPTS = ["the quiet harbor of marlow", "a red circle", "the old tower of avalon"]


def test_bad_settings_are_config_errors_naming_the_key():
    for key, value in (("lr", 0), ("max_iterations", -1), ("target_loss", "fast"), ("calibration_images", 0)):
        with pytest.raises(ConfigError, match=f"guidance.{key}"):
            guidance_method("pe", f"guidance.{key}={value}").check(sampler())
    guidance_method("pe").check(sampler())


def test_pe_lowers_the_magnitude_per_image_and_stops_below_the_target(micro_world):
    micro = micro_backbone()
    none = sample(micro, Guidance(), PROMPTS, [1, 2, 3], steps=3)
    # A target above every magnitude: nothing to optimise, exactly plain CFG.
    assert torch.equal(sample(micro, PromptEmbeddingOptimisation(1e9, 0.05, 10), PROMPTS, [1, 2, 3], steps=3), none)
    pe = PromptEmbeddingOptimisation(0.0, 0.05, 5)
    batch = sample(micro, pe, PROMPTS, [1, 2, 3], steps=1)
    st = pe.batch_stats()
    assert (st["optimised_magnitude"] < st["first_step_magnitude"]).all() and (st["pe_iterations"] == 5).all()
    assert st["triggered"].all()
    single = PromptEmbeddingOptimisation(0.0, 0.05, 5)
    alone = sample(micro, single, PROMPTS[2:], [3], steps=1)
    torch.testing.assert_close(batch[2:], alone, atol=1e-4, rtol=1e-4)  # independent of the batch
