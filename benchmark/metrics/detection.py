"""Memorization detection: does the first-step noise magnitude ``m_T`` separate memorized prompts?

Wen et al. (ICLR 2024) score each prompt by its text-conditional noise magnitude; the
benchmark reports the ROC AUC of that score between memorized and non-memorized prompts,
one score per prompt (the mean over that prompt's generations, i.e. over seeds).
"""

from __future__ import annotations

from typing import Sequence

import torch


def roc_auc(scores: Sequence[float] | torch.Tensor, labels: Sequence[bool] | torch.Tensor) -> float:
    """ROC AUC as the Mann-Whitney statistic: P(score_pos > score_neg) + 0.5 P(tie).

    Average ranks handle ties exactly, so this equals the area under the ROC curve
    (torchmetrics' ``BinaryAUROC``, checked in the tests) without its thresholds.
    """
    s = torch.as_tensor(scores, dtype=torch.float64).flatten()
    y = torch.as_tensor(labels).flatten().bool()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes, got {n_pos} positive and {n_neg} negative scores")
    order = s.argsort()
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=torch.float64)
    # Tied scores share the mean of their ranks.
    uniq, inverse = torch.unique(s, return_inverse=True)
    mean_rank = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, ranks)
    mean_rank /= torch.bincount(inverse, minlength=len(uniq)).double()
    ranks = mean_rank[inverse]
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def per_prompt_mean(values: torch.Tensor, prompt_index: list[int]) -> dict[int, float]:
    """Mean of per-image values over each prompt's images."""
    out: dict[int, list[float]] = {}
    for v, p in zip(values.tolist(), prompt_index):
        out.setdefault(p, []).append(v)
    return {p: sum(v) / len(v) for p, v in out.items()}


def detection_metrics(magnitudes: torch.Tensor, prompt_index: list[int], memorized: list[bool | None],
                      prefix: str = "eval/detection") -> dict[str, float]:
    """AUC of the per-prompt mean first-step magnitude, memorized vs control prompts, and the means."""
    per_prompt = per_prompt_mean(magnitudes, prompt_index)
    labelled = [(m, memorized[p]) for p, m in per_prompt.items() if memorized[p] is not None]
    pos = [m for m, flag in labelled if flag]
    neg = [m for m, flag in labelled if not flag]
    out = {}
    if pos:
        out[f"{prefix}_magnitude_memorized"] = sum(pos) / len(pos)
    if neg:
        out[f"{prefix}_magnitude_control"] = sum(neg) / len(neg)
    if pos and neg:
        out[f"{prefix}_auc"] = roc_auc([m for m, _ in labelled], [f for _, f in labelled])
    return out
