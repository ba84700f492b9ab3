"""``method=dpsgd_ti`` end to end on the micro world: the budget is spent, not exceeded."""

from __future__ import annotations

import json

import pytest


def _metrics(out):
    assert (out / "metrics.json").exists()
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI runs it in the slow pass
def test_dpsgd_ti_end_to_end(run_job):
    metrics, out = run_job(["method=dpsgd_ti", "privacy=dp", "privacy.epsilon=4", "method.epochs=3",
                            "method.batch_size=4"])
    on_disk = _metrics(out)
    assert on_disk["privacy/epsilon"] <= 4 and on_disk["privacy/epsilon"] > 3.9  # the budget is spent, not exceeded
    assert on_disk["privacy/sample_rate"] == 0.5 and on_disk["privacy/steps"] == 6 == on_disk["privacy/opacus_steps"]
    by_epoch = json.loads(on_disk["adapt/epsilon_by_epoch"])
    assert [e for e, _ in by_epoch] == [1, 2, 3]
    spent = [eps for _, eps in by_epoch]
    assert spent == sorted(spent) and spent[-1] == on_disk["privacy/epsilon"]
    assert on_disk["privacy/noise_multiplier"] > 0 and on_disk["privacy/private"] is True
    assert (out / "learned_embeds.safetensors").exists()
