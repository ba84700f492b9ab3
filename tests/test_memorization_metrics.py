"""Detection AUC against torchmetrics and a hand count; per-group metrics from guidance stats."""

import itertools

import pytest
import torch
from torchmetrics.classification import BinaryAUROC

from benchmark.metrics.detection import detection_metrics, roc_auc


def _pairwise_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_pairwise_count_and_torchmetrics_with_ties():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        scores = torch.randint(0, 6, (40,), generator=g).float()  # many ties
        labels = torch.randint(0, 2, (40,), generator=g).bool()
        ours = roc_auc(scores, labels)
        assert ours == pytest.approx(_pairwise_auc(scores.tolist(), labels.tolist()), abs=1e-12)
        assert ours == pytest.approx(float(BinaryAUROC()(scores, labels.long())), abs=1e-6)
    assert roc_auc([3, 2, 1], [True, False, False]) == 1.0
    assert roc_auc([1, 2, 3], [True, False, False]) == 0.0
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 2], [True, True])


def test_detection_uses_one_score_per_prompt():
    # Prompt 0 (memorized) has seeds 5 and 1 (mean 3); prompts 1, 2 (controls) means 2 and 4.
    mags = torch.tensor([5.0, 2.0, 4.0, 1.0])
    out = detection_metrics(mags, [0, 1, 2, 0], [True, False, False])
    assert out["eval/detection_auc"] == pytest.approx(0.5)
    assert out["eval/detection_magnitude_memorized"] == pytest.approx(3.0)
    assert out["eval/detection_magnitude_control"] == pytest.approx(3.0)
    assert "eval/detection_auc" not in detection_metrics(mags, [0, 1, 2, 0], [None, None, None])
