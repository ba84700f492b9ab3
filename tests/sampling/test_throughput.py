"""The throughput measurements behind scripts/benchmark_sampler.py run and report what they say."""

from __future__ import annotations

import pytest


@pytest.mark.slow  # times real sampling (~5 s)
def test_stage_throughput_times_the_stage_and_the_bare_loop_on_the_same_plan(micro_world):
    from benchmark.sampling.throughput import stage_throughput

    result = stage_throughput("builtin:micro", images=4, batch=2, steps=1, repeats=1)
    assert result["images"] == 4 and result["steps"] == 1
    assert result["stage_images_per_s"] > 0 and result["loop_images_per_s"] > 0
    assert result["throughput_ratio_stage_over_loop"] == pytest.approx(
        result["stage_images_per_s"] / result["loop_images_per_s"])
