"""Pooled membership inference: equal to computing on the concatenated scores; the report shows it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmark.privacy.mia_scores import read_scores, write_scores
from benchmark.privacy.mia_stats import membership_figures
from benchmark.report.mia_pool import ATTACKS, main, pool_sweep


def _run(sweep, name, method, eps, world_seed, rng, shift=0.5, finished=True, n_members=32, n_nonmembers=64,
         attacks=ATTACKS):
    run_dir = sweep / name
    # Only the loss attacks see a member shift; the calibrated one twice the raw one (as it should).
    shifts = {"loss": shift, "loss_calibrated": 2 * shift, "similarity": 0.0}
    members = {a: rng.normal(shifts[a], 1, n_members).tolist() for a in attacks}
    nonmembers = {a: rng.normal(0, 1, n_nonmembers).tolist() for a in attacks}
    write_scores(run_dir, {"method": method, "guidance": "none", "target_epsilon": eps, "epsilon": eps,
                           "delta": 1e-5 if math.isfinite(eps) else 0.0, "dataset_world_seed": world_seed},
                 members, nonmembers)
    metrics = {"method": method, "guidance": "none", "seed": 0, "privacy/target_epsilon": eps,
               "privacy/mia_loss_auc": 0.6, "eval/private_style_rate": 0.5, "config/dataset/world/seed": world_seed}
    if finished:
        (run_dir / "metrics.json").write_text(json.dumps({k: (str(v) if isinstance(v, float) and math.isinf(v)
                                                              else v) for k, v in metrics.items()}))
    return members, nonmembers


def test_pooling_equals_computing_on_the_concatenated_scores(tmp_path):
    rng = np.random.default_rng(0)
    parts = [_run(tmp_path, f"{i}_ti", "ti", math.inf, i, rng) for i in range(3)]
    dp = [_run(tmp_path, f"{i}_dp", "dpsgd_ti", 1.0, i, rng, shift=0.0) for i in range(2)]
    _run(tmp_path, "dup_ti", "ti", math.inf, 0, rng)  # world seed 0 again: same members, skipped
    _run(tmp_path, "unfinished_ti", "ti", math.inf, 9, rng, finished=False)  # no metrics.json: skipped
    pools = {p.method: p for p in pool_sweep(tmp_path)}
    assert sorted(pools["ti"].world_seeds) == [0, 1, 2] and len(pools["dpsgd_ti"].runs) == 2
    assert ATTACKS == ("loss", "loss_calibrated", "similarity")
    concat = lambda ps, side: {a: [s for p in ps for s in p[side][a]] for a in ATTACKS}  # noqa: E731
    expected, _ = membership_figures(concat(parts, 0), concat(parts, 1), math.inf, 0.0)
    assert pools["ti"].figures == pytest.approx(expected)
    assert pools["ti"].figures["privacy/mia_num_members"] == 96
    expected_dp, _ = membership_figures(concat(dp, 0), concat(dp, 1), 1.0, 1e-5)
    assert pools["dpsgd_ti"].figures == pytest.approx(expected_dp)
    assert "privacy/mia_exceeds_dp_bound" in pools["dpsgd_ti"].figures
    for attack in ATTACKS:  # every attack pooled: AUC, TPR at both FPRs, the DP bound of a DP pool
        for key in ("auc", "tpr_at_fpr_1pct", "tpr_at_fpr_0p1pct"):
            assert f"privacy/mia_{attack}_{key}" in pools["ti"].figures
        assert f"privacy/mia_{attack}_dp_bound_at_fpr_1pct" in pools["dpsgd_ti"].figures
    assert pools["ti"].figures["privacy/mia_loss_calibrated_auc"] > pools["ti"].figures["privacy/mia_loss_auc"]


def test_files_from_before_the_calibrated_attack_pool_the_attacks_they_have(tmp_path):
    rng = np.random.default_rng(4)
    _run(tmp_path, "0_ti", "ti", math.inf, 0, rng, attacks=("loss", "similarity"))
    _run(tmp_path, "1_ti", "ti", math.inf, 1, rng)
    (pool,) = pool_sweep(tmp_path)
    assert "privacy/mia_loss_auc" in pool.figures and "privacy/mia_loss_calibrated_auc" not in pool.figures
    assert main([str(tmp_path)]) == 0  # the table leaves the missing attack's cells empty


def test_the_command_writes_an_evaluation_only_table(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for i in range(2):
        _run(tmp_path, f"{i}_lora", "lora", math.inf, i, rng)
    assert main([str(tmp_path)]) == 0
    text = (tmp_path / "mia_pooled.md").read_text()
    assert "EVALUATION ONLY" in text and "| lora | none | inf | 0,1 | 64 | 128 |" in text
    header = next(line for line in text.splitlines() if line.startswith("| method"))
    assert "| loss AUC |" in header and "| loss_calibrated AUC | loss_calibrated TPR@1%FPR (width) |" in header
    row = next(line for line in text.splitlines() if line.startswith("| lora"))
    cells = dict(zip(header.split("|"), row.split("|")))
    assert cells[" loss_calibrated AUC "].strip() and cells[" loss_calibrated TPR@0.1%FPR "].strip()
    assert json.loads((tmp_path / "mia_pooled.json").read_text())["evaluation_only"] is True
    assert main([str(tmp_path / "empty")]) == 2


def test_the_scores_file_round_trips_and_says_it_is_private(tmp_path):
    write_scores(tmp_path, {"method": "ti", "target_epsilon": math.inf}, {"loss": [1.0]}, {"loss": [0.5, 0.2]})
    header, members, nonmembers = read_scores(tmp_path / "privacy_eval" / "mia_scores.jsonl")
    assert header["publish"] is False and header["target_epsilon"] == "inf"  # valid JSON, no Infinity literal
    assert members == {"loss": [1.0]} and nonmembers == {"loss": [0.5, 0.2]}


def test_the_report_plots_attack_auc_beside_utility_and_pools(tmp_path):
    from benchmark.report.report import make_report

    rng = np.random.default_rng(2)
    for i in range(2):
        _run(tmp_path, f"{i}_ti", "ti", math.inf, i, rng)
        _run(tmp_path, f"{i}_dp", "dpsgd_ti", 1.0, i, rng)
    summary, paths = make_report(tmp_path)
    assert paths["utility"].is_file() and paths["mia_md"].is_file()
    md = paths["md"].read_text()
    assert "privacy/mia_loss_auc ↓" in md and "utility_vs_epsilon.png` (eval/private_style_rate, " \
        "privacy/mia_loss_auc)" in md
