"""Thresholds: parsing, "auto", quantiles calibrated on the run's own sampler with their own seeds."""

from types import SimpleNamespace

import pytest
import torch

from benchmark.config import ConfigError
from benchmark.guidance.base import Calibration, SamplingContext
from benchmark.guidance.calibration import Magnitudes, parse_threshold
from benchmark.sampling.plan import calibration_seed, image_seed
from benchmark.sampling.sampler import Guidance, GuidanceInputs, combine, cfg_predictions, noise_magnitude
from tests.guidance.helpers import guidance_method
from tests.sampling.helpers import micro_backbone, sample, sampler


def test_threshold_specs_absolute_and_quantile():
    assert parse_threshold(1.5, "k") == ("absolute", 1.5, 1.0)
    assert parse_threshold("1.5", "k") == ("absolute", 1.5, 1.0)
    assert parse_threshold("q0.9", "k") == ("quantile", 0.9, 1.0)
    assert parse_threshold("2.5q0.95", "k") == ("quantile", 0.95, 2.5)
    for bad in ("q1.5", "fast", -1.0, "-1", "nan", True):
        with pytest.raises(ConfigError, match="guidance.x"):
            parse_threshold(bad, "guidance.x")
    mags = Magnitudes(torch.arange(1.0, 101.0), torch.arange(0.0, 11.0))
    assert mags.resolve("q0.5", "k") == pytest.approx(50.5)  # linear interpolation, as numpy's default
    assert mags.resolve("2q1.0", "k", every_step=True) == pytest.approx(20.0)
    assert mags.resolve(3.0, "k") == 3.0


def test_calibration_metrics_are_reported_under_guidance():
    assert Calibration({"lambda_ss": 1.0, "tau": 5.0}, 8).metrics() == {
        "guidance/lambda_ss": 1.0, "guidance/tau": 5.0, "guidance/calibration_images": 8}
    assert Calibration({"target_loss": 3.0}).metrics() == {"guidance/target_loss": 3.0}


def test_calibration_seeds_never_meet_evaluation_seeds():
    evaluation = {image_seed(s, i) for s in range(3) for i in range(10_000)}
    calibration = {calibration_seed(s, i) for s in range(3) for i in range(10_000)}
    assert not evaluation & calibration
    assert calibration_seed(2, 5) == 2 * 1_000_003 + 700_000 + 5  # the formula of the reference results


class _PerStep(Guidance):
    def start(self, items):
        super().start(items)
        self.per_step = []

    def noise_prediction(self, unet, x: GuidanceInputs):
        eps_u, eps_c = cfg_predictions(unet, x.latents, x.timestep, x.cond, x.uncond)
        self.per_step.append(noise_magnitude(eps_c, eps_u))
        return combine(eps_u, eps_c, x.guidance_scale)


def test_quantile_thresholds_are_quantiles_of_plain_cfg_magnitudes_at_calibration_seeds(micro_world):
    micro = micro_backbone()
    prompts = ["a red circle", "a blue star", "a green square"]
    method = guidance_method("prss", "guidance.lambda_ss=q0.5", "guidance.lambda_pr=q0.9", "guidance.tau=2q1.0",
                             "guidance.calibration_images=5", f"guidance.calibration_prompts=[{','.join(prompts)}]")
    ctx = SamplingContext(micro, SimpleNamespace(prompts=[]), sampler(steps=3), seed=4, device="cpu")
    calibration = method.calibrate(ctx)
    # By hand: the prompts cycled to 5 images, plain CFG at the calibration seeds, same sampler.
    texts = [prompts[i % 3] for i in range(5)]
    rec = _PerStep()
    sample(micro, rec, texts, [calibration_seed(4, i) for i in range(5)], steps=3)
    first, every = rec.per_step[0].double(), torch.cat(rec.per_step).double()
    assert calibration.images == 5
    assert calibration["lambda_ss"] == float(first.quantile(0.5))
    assert calibration["lambda_pr"] == float(every.quantile(0.9))  # PR thresholds: every step's magnitudes
    assert calibration["tau"] == pytest.approx(2 * float(every.max()))


def test_absolute_and_auto_thresholds_sample_nothing(micro_world):
    ctx = SamplingContext(micro_backbone(), SimpleNamespace(prompts=[]), sampler(), seed=0, device="cpu")
    absolute = guidance_method("pe", "guidance.target_loss=2.5").calibrate(ctx)
    assert absolute == Calibration({"target_loss": 2.5}, 0)
    # "auto" on a model that is not the offline world: the official values, no calibration images.
    real = SamplingContext(SimpleNamespace(world_dir=None), SimpleNamespace(prompts=[]), sampler(), 0, "cpu")
    assert guidance_method("prss").calibrate(real) == Calibration({"lambda_ss": 1.0, "lambda_pr": 3.0, "tau": 5.0})


def test_a_quantile_without_non_memorized_prompts_is_a_config_error(micro_world):
    ctx = SamplingContext(micro_backbone(), SimpleNamespace(prompts=[]), sampler(), seed=0, device="cpu")
    with pytest.raises(ConfigError, match="needs non-memorized prompts"):
        guidance_method("pe", "guidance.target_loss=q0.5").calibrate(ctx)
