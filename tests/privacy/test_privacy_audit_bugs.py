"""The split audit catches planted bugs at epsilon 1, 4 and 8 and never flags a correct mechanism.

Releases are projections on the canary of worst-case neighbouring pairs (see
``benchmark/privacy/audit_releases.py``); the evaluation releases are sized so that the
audit's ceiling is twice the epsilon tested (at least 200k per dataset).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.privacy.audit_releases import LinearDPSGDRelease, NoisyMeanRelease, audit_mechanism
from benchmark.privacy.tables import AUDIT_CASES

pytest.importorskip("dp_accounting")
torch = pytest.importorskip("torch")  # imported at collection, not inside one timed test


def _check_case(kind: str, epsilon: float) -> None:
    for bug in AUDIT_CASES[kind]:
        result, setup = audit_mechanism(kind, epsilon, bug, seed=1)
        assert result.ceiling >= 2 * epsilon, setup
        if bug == "none":
            assert result.epsilon_lower_bound <= epsilon, (bug, result)
        else:
            assert result.epsilon_lower_bound > epsilon, (bug, result)


@pytest.mark.parametrize("epsilon", [1.0, pytest.param(4.0, marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", list(AUDIT_CASES))
def test_bugs_are_caught_and_correct_mechanisms_pass(kind, epsilon):
    _check_case(kind, epsilon)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(AUDIT_CASES))
def test_bugs_are_caught_and_correct_mechanisms_pass_at_epsilon_8(kind):
    # 33M evaluation releases per dataset (ceiling 16): a few seconds per mechanism.
    _check_case(kind, 8.0)


def test_noisy_mean_projection_matches_the_release_it_stands_for():
    # The projected sampler against the mean of an explicit subset: replace-one, m of n.
    rng = np.random.default_rng(0)
    release = NoisyMeanRelease("replace_one", n=4, m=2, sigma=0.0)
    values = release.draw(0, rng, 20_000)
    # D0 = (+R, -R, -R, -R): the mean is 0 when the canary is drawn (prob 1/2), else -R.
    assert set(np.unique(values)) == {-1.0, 0.0}
    assert abs(np.mean(values == 0.0) - 0.5) < 0.02
    assert np.all(release.draw(1, rng, 100) == -1.0)
    added = NoisyMeanRelease("add_remove", n=4, m=4, sigma=0.0)
    assert added.draw(0, rng, 1)[0] == -1.0 and added.draw(1, rng, 1)[0] == pytest.approx(-0.75)  # divisor m
    wrong = NoisyMeanRelease("add_remove", n=4, m=4, sigma=0.0, private_divisor=True)
    assert wrong.draw(1, rng, 1)[0] == pytest.approx(-0.6)  # (-4 + 1) / 5: the private count


def test_dpsgd_projection_matches_an_explicit_clipped_step():
    # Zero noise, canary always sampled: the statistic is the canary's clipped gradient
    # along its direction, i.e. exactly C under per-example clipping ...
    correct = LinearDPSGDRelease(noise_multiplier=0.0, sample_rate=1.0, clip_norm=1.0)
    rng = np.random.default_rng(0)
    assert correct.draw(1, rng, 3) == pytest.approx([1.0] * 3, rel=1e-6)
    assert correct.draw(0, rng, 3) == pytest.approx([0.0] * 3, abs=1e-12)
    # ... and sqrt(16) C when each coordinate is clipped instead.
    buggy = LinearDPSGDRelease(noise_multiplier=0.0, sample_rate=1.0, clip_norm=1.0, bug="clip_value")
    assert buggy.draw(1, rng, 1)[0] == pytest.approx(4.0, rel=1e-6)
    # The per-example gradients behind it equal autograd on an nn.Linear, one example at a time.
    from benchmark.privacy.audit_releases import _per_example_gradients

    layer = torch.nn.Linear(5, 1, bias=False).double()
    x, y = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    grads = _per_example_gradients(layer.weight.detach(), x, y)
    for i in range(3):
        layer.zero_grad()
        (0.5 * (layer(x[i]).squeeze() - y[i]) ** 2).backward()
        assert torch.allclose(grads[i], layer.weight.grad.flatten(), atol=1e-12)
    assert math.isclose(correct.noise_std, 0.0)
