"""The perturbation baselines (rna, rt, cwr, gni): their draws, strength 0 = none, batch independence."""

import numpy as np
import pytest
import torch

from benchmark.config import ConfigError
from benchmark.guidance.perturbations import (GaussianEmbeddingNoiseGuidance, PromptPerturbationGuidance,
                                              perturb_prompt, tokenizer_words)
from benchmark.sampling.sampler import Guidance
from tests.guidance.helpers import guidance_method
from tests.sampling.helpers import micro_backbone, sample, sampler

TEXT = "the quiet harbor of marlow"
PROMPTS = [TEXT, "a red circle", "the old tower of avalon"]


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


def test_bad_knobs_are_config_errors_naming_the_key():
    for name, key, value in (("rna", "k", -1), ("rt", "kind", "shuffle"), ("gni", "scale", -0.5)):
        with pytest.raises(ConfigError, match=f"guidance.{key}"):
            guidance_method(name, f"guidance.{key}={value}").check(sampler())


@pytest.fixture(scope="module")
def micro(micro_world):
    return micro_backbone()


def test_tokenizer_words_are_plain_vocabulary(micro):
    words = tokenizer_words(micro.tokenizer)
    assert "harbor" in words and not any(w.startswith("<") for w in words)


def test_prompt_perturbation_samples_the_perturbed_text_drawn_from_the_image_seed(micro):
    rule = PromptPerturbationGuidance(micro.encode_prompts, "rna", 2, [])
    out = sample(micro, rule, PROMPTS, [1, 2, 3], steps=3)
    expected_texts = [perturb_prompt(p, "rna", 2, np.random.default_rng([s, 0x5EED]), [])
                      for p, s in zip(PROMPTS, [1, 2, 3])]
    assert rule.perturbed == expected_texts and expected_texts != PROMPTS
    torch.testing.assert_close(out, sample(micro, Guidance(), expected_texts, [1, 2, 3], steps=3))
    assert torch.equal(sample(micro, PromptPerturbationGuidance(micro.encode_prompts, "rna", 0, []), PROMPTS,
                              [1, 2, 3], steps=3), sample(micro, Guidance(), PROMPTS, [1, 2, 3], steps=3))


def test_gni_at_zero_is_none_and_draws_per_image_noise(micro):
    none = sample(micro, Guidance(), PROMPTS, [1, 2, 3], steps=3)
    assert torch.equal(sample(micro, GaussianEmbeddingNoiseGuidance(0.0), PROMPTS, [1, 2, 3], steps=3), none)
    batch = sample(micro, GaussianEmbeddingNoiseGuidance(0.5), PROMPTS, [1, 2, 3], steps=3)
    alone = sample(micro, GaussianEmbeddingNoiseGuidance(0.5), PROMPTS[1:2], [2], steps=3)
    torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batch, none, atol=1e-3)
