"""Metrics against independent computations."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from benchmark.metrics import alignment, concept, fidelity, memorization
from benchmark.metrics.encoders import ClipImageFeatures, load_clip


def _reference_fid(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _reference_kid_full(a, b):
    """Unbiased MMD^2 with the cubic polynomial kernel, all samples at once."""
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    m, n = len(a), len(b)
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def test_fid_and_kid_match_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    b = rng.normal(0.5, 1.3, size=(200, 8))
    got = fidelity.fid_kid(a, b, kid_subset_size=200, seed=0)
    assert got["fid"] == pytest.approx(_reference_fid(a, b), rel=1e-4)
    # With subsets as large as the sets every subset is the full set: KID is exact.
    assert got["kid"] == pytest.approx(_reference_kid_full(a, b), rel=1e-6)
    same = fidelity.fid_kid(a, a, kid_subset_size=200, seed=0)
    assert abs(same["fid"]) < 1e-6
    # The unbiased MMD estimate of a set against itself is slightly negative, not zero.
    assert same["kid"] == pytest.approx(_reference_kid_full(a, a), rel=1e-6) and same["kid"] < 0


def test_kid_is_reproducible_for_a_seed():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(60, 4)), rng.normal(size=(60, 4))
    assert fidelity.fid_kid(a, b, 20, seed=3)["kid"] == fidelity.fid_kid(a, b, 20, seed=3)["kid"]
    # ... and the seed is what draws the subsets (another seed, other subsets, another estimate).
    assert fidelity.fid_kid(a, b, 20, seed=4)["kid"] != fidelity.fid_kid(a, b, 20, seed=3)["kid"]


def test_folder_features_use_the_custom_extractor_without_resizing(tmp_path, micro_world):
    clip, _ = load_clip(micro_world / "clip")
    fx = ClipImageFeatures(clip, [0.5] * 3, [0.5] * 3)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    for i, im in enumerate(images):
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(tmp_path / f"{i}.png")
    feats = fidelity.folder_features(tmp_path, fx, torch.device("cpu"))
    direct = fx(images.float()).numpy()
    order = np.argsort([f"{i}.png" for i in range(5)])
    np.testing.assert_allclose(np.sort(feats, axis=0), np.sort(direct[order], axis=0), atol=1e-4)


def test_clip_score_equals_scaled_cosine(micro_world):
    model, processor = load_clip(micro_world / "clip")
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    prompts = ["a red circle", "a blue star", "the quiet harbor of marlow"]
    got = alignment.clip_score(images, prompts, lambda: (model, processor))
    with torch.no_grad():
        px = processor(images=list(images), return_tensors="pt")["pixel_values"]
        img = torch.nn.functional.normalize(model.get_image_features(px), dim=-1)
        tok = processor(text=prompts, return_tensors="pt", padding=True)
        txt = torch.nn.functional.normalize(model.get_text_features(tok["input_ids"], tok["attention_mask"]), dim=-1)
    expected = (100 * (img * txt).sum(-1)).mean().clamp(min=0)  # torchmetrics clamps the mean
    assert got == pytest.approx(float(expected), abs=1e-3)


def test_copy_similarity_is_one_for_a_copy_and_lower_for_a_shift():
    from benchmark.world.generator import render_archive_image

    a = torch.from_numpy(render_archive_image(1)).permute(2, 0, 1)[None]
    b = torch.from_numpy(render_archive_image(2)).permute(2, 0, 1)[None]
    shifted = torch.roll(a, shifts=4, dims=3)
    d = memorization.PixelCopyDescriptor()
    sims = memorization.max_similarity(torch.cat([a, shifted, b]), a, d)
    assert sims[0] == pytest.approx(1.0, abs=1e-5)
    assert sims[1] < 0.9 and sims[2] < 0.6
    restricted = memorization.max_similarity(torch.cat([a, b]), torch.cat([a, b]), d, candidates=[[1], [1]])
    assert restricted[0] < 0.6 and restricted[1] == pytest.approx(1.0, abs=1e-5)
    summary = memorization.memorization_summary(torch.tensor([0.95, 0.2]), 0.9, "x")
    assert summary == {"x_similarity_mean": pytest.approx(0.575), "x_fraction_copied": 0.5}


def test_attribute_accuracy_counts_only_prompted_attributes():
    class FakeJudge:
        HEADS = {"shape": ("circle", "star"), "colour": ("red",), "fill": ("solid", "striped"),
                 "background": ("white", "black")}

        def predict(self, images):
            return {"shape": ["circle", "star"], "colour": ["red", "red"], "fill": ["striped", "solid"],
                    "background": ["black", "black"]}

    out = concept.attribute_accuracy(torch.zeros(2, 3, 4, 4, dtype=torch.uint8),
                                     [{"shape": "circle"}, {"shape": "circle", "colour": "red"}], FakeJudge())
    assert out == {"accuracy_shape": 0.5, "accuracy_colour": 1.0, "private_style_rate": 0.5, "proxy_style_rate": 0.0}


def test_missing_sscd_file_is_named():
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        memorization.load_copy_detector("/nowhere.pt")
