"""128-bit counter-based generator for the release noise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from benchmark.privacy.randomness import RELEASE_KEY_BITS, release_key, release_rng
from benchmark.privacy.validation import PrivacyWarning


def test_secret_keys_are_128_bit_and_fresh():
    keys = {release_key(None, True, "the noise")[0] for _ in range(64)}
    assert len(keys) == 64
    assert all(0 <= k < 2**RELEASE_KEY_BITS for k in keys)
    assert max(k.bit_length() for k in keys) > 64  # more than a 64-bit seed could hold
    assert release_key(None, True, "the noise")[1] == "secret"


def test_streams_are_reproducible_per_key_and_purpose_and_separate():
    key = release_key(None, True, "x")[0]
    a = release_rng(key, "noise").standard_normal(1000)
    assert np.array_equal(a, release_rng(key, "noise").standard_normal(1000))
    assert not np.array_equal(a, release_rng(key, "subsample").standard_normal(1000))
    assert not np.array_equal(a, release_rng(key ^ 1, "noise").standard_normal(1000))
    assert isinstance(release_rng(key, "noise").bit_generator, np.random.Philox)
    big = release_rng(key, "noise").standard_normal(200_000)
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01


def test_configured_keys_warn_and_bad_keys_are_refused():
    with pytest.warns(PrivacyWarning, match="mechanism_seed=7"):
        assert release_key(7, True, "the noise") == (7, "seeded")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert release_key(7, False, "the noise") == (7, "seeded")  # not private: nothing to warn about
    for bad in (-1, 2**128, 1.5, True):
        with pytest.raises(ValueError, match="release key"):
            release_rng(bad, "noise")
