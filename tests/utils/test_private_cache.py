"""Keyed hashes of private data, owner-only caches, and the purge command."""

import hashlib
import hmac
import stat

import torch

from benchmark import cache
from benchmark.data.types import ImageSet, content_hash
from benchmark.utils.cache import cache_root, keyed_digest, secret_key


def _set(value: int) -> ImageSet:
    return ImageSet(torch.full((2, 3, 4, 4), value, dtype=torch.uint8), ["a", "b"], [])


def test_the_dataset_hash_is_an_hmac_under_the_caches_secret_key(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "one"))
    data = _set(7)
    digest = content_hash(data, data)
    parts = data.images.numpy().tobytes() + b"a\nb"
    assert digest == hmac.new(secret_key(), parts, hashlib.sha256).hexdigest()[:16]  # an independent HMAC
    assert digest != hashlib.sha256(parts).hexdigest()[:16]  # not the plain hash anyone could recompute
    assert content_hash(data, data) == digest and content_hash(_set(8), _set(8)) != digest
    key_file = cache_root() / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_root().stat().st_mode) == 0o700
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "two"))  # another machine: another key
    assert content_hash(data, data) != digest and keyed_digest([parts]) == content_hash(data, data)


def test_purge_removes_every_private_cache_and_keeps_the_built_worlds(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path))
    secret_key()
    for name in ("embeddings", "hf", "world", "worlds"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text("x")
    assert cache.main(["list"]) == 0 and "private cache" in capsys.readouterr().out
    assert cache.main(["purge"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["worlds"]
    assert "removed" in capsys.readouterr().out
