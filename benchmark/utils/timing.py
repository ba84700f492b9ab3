"""Timing of competing code paths for the benchmark scripts (not for tests: nothing asserts on speed)."""

from __future__ import annotations

import time
from typing import Callable


def best_interleaved(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The best wall time (s) of each callable over ``repeats`` rounds.

    Each round runs every contender once, in order, so a clock or load change on a shared
    machine hits all of them alike; the minimum is the least disturbed run. Warm up first.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}
