"""guidance=negative_prompt: "" is plain CFG bit for bit; otherwise the unconditional branch is the negative prompt."""

from types import SimpleNamespace

import pytest
import torch

from benchmark.config import ConfigError
from benchmark.guidance.base import Calibration, SamplingContext
from benchmark.sampling.plan import items_for_texts
from benchmark.sampling.sampler import Guidance, GuidanceInputs
from tests.guidance.helpers import guidance_method
from tests.sampling.helpers import micro_backbone, sample, sampler

PROMPTS = ["a red circle on a white background", "the old tower of avalon"]


def _rule(micro, negative: str):
    method = guidance_method("negative_prompt", f"guidance.negative_prompt='{negative}'")
    method.check(sampler())
    ctx = SamplingContext(micro, SimpleNamespace(prompts=[]), sampler(), seed=0, device="cpu")
    return method.guidance(ctx, method.calibrate(ctx))


def test_empty_negative_prompt_is_plain_cfg_bit_for_bit(micro_world):
    micro = micro_backbone()
    assert torch.equal(sample(micro, _rule(micro, ""), PROMPTS, [3, 4]), sample(micro, Guidance(), PROMPTS, [3, 4]))


def test_the_unconditional_branch_is_the_negative_prompt(micro_world):
    micro = micro_backbone()
    rule = _rule(micro, "a blue square")
    x = torch.randn(2, *micro.latent_shape, generator=torch.Generator().manual_seed(0))
    t, s = torch.tensor(700), 4.0
    cond, empty = micro.encode_prompts(PROMPTS), micro.encode_prompts(["", ""])
    rule.start(items_for_texts(PROMPTS, [3, 4]))
    got = rule.noise_prediction(micro.unet, GuidanceInputs(x, t, 0, cond, empty, s))
    with torch.no_grad():  # by hand, one UNet call per branch
        eps_n = micro.unet(x, t, encoder_hidden_states=micro.encode_prompts(["a blue square"] * 2)).sample
        eps_c = micro.unet(x, t, encoder_hidden_states=cond).sample
        eps_empty = micro.unet(x, t, encoder_hidden_states=empty).sample
    torch.testing.assert_close(got, eps_n + s * (eps_c - eps_n), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, eps_empty + s * (eps_c - eps_empty), atol=1e-3)
    torch.testing.assert_close(rule.batch_stats()["first_step_magnitude"], (eps_c - eps_n).flatten(1).norm(dim=1))


def test_a_negative_prompt_that_is_not_text_is_a_config_error():
    with pytest.raises(ConfigError, match="guidance.negative_prompt"):
        guidance_method("negative_prompt", "guidance.negative_prompt=[a,b]").check(sampler())
    assert guidance_method("negative_prompt").calibrate(None) == Calibration()
