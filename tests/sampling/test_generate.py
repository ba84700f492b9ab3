"""The sampling stage's outputs: gathering in plan order, the PNGs, images/index.jsonl, the grid;
and a composed run (a DP adaptation sampled with PRSS)."""

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.sampling.generate import gather_outputs, read_index, write_outputs
from benchmark.sampling.plan import items_for_texts


def _outputs(order, images):
    return [{"index": torch.tensor(chunk), "images": images[chunk],
             "stats": {"m": torch.tensor([float(i) for i in chunk]), "triggered": torch.tensor([i % 2 == 0 for i in chunk])}}
            for chunk in order]


def test_gather_puts_images_and_stats_in_plan_order_and_refuses_missing_items():
    images = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 3, 2, 2).contiguous()
    got, stats = gather_outputs(_outputs([[2, 0], [3, 1]], images), 4)
    assert torch.equal(got, images)
    assert stats["m"].tolist() == [0.0, 1.0, 2.0, 3.0] and stats["triggered"].tolist() == [True, False, True, False]
    with pytest.raises(RuntimeError, match="expected 0..3"):
        gather_outputs(_outputs([[2, 0], [0, 1]], images), 4)


def test_index_rows_name_each_png_with_its_prompt_seed_and_stats(tmp_path):
    items = items_for_texts(["a red circle", "a blue star"], [7, 8])
    images = torch.stack([torch.full((3, 4, 4), 10, dtype=torch.uint8), torch.full((3, 4, 4), 200, dtype=torch.uint8)])
    stats = {"first_step_magnitude": torch.tensor([0.5, float("nan")]), "triggered": torch.tensor([True, False]),
             "chosen_candidate": torch.tensor([2, 0])}
    folder, index_file, grid = write_outputs(images, items, stats, tmp_path, grid_images=2)
    rows = read_index(folder)
    assert index_file == folder / "index.jsonl" and grid.is_file()
    assert [r["file"] for r in rows] == ["00000.png", "00001.png"]
    assert rows[0] == {"file": "00000.png", "index": 0, "prompt_index": 0, "seed": 7, "text": "a red circle",
                       "original": "a red circle", "memorized": None, "first_step_magnitude": 0.5,
                       "triggered": True, "chosen_candidate": 2}
    assert rows[1]["first_step_magnitude"] is None  # not finite: null, so the file stays valid JSON
    assert isinstance(rows[0]["chosen_candidate"], int)
    for r, image in zip(rows, images):
        png = torch.from_numpy(np.asarray(Image.open(folder / r["file"]))).permute(2, 0, 1)
        assert torch.equal(png, image)
    assert sorted(p.name for p in folder.iterdir()) == ["00000.png", "00001.png", "index.jsonl"]


COMPOSED = ["dataset=tiny_memorized", "dataset.world.num_adapt=4", "eval.images_per_prompt=1", "eval=memorization",
            "method=dpagg_ti", "method.max_steps=3", "privacy=dp", "privacy.epsilon=1"]


@pytest.mark.slow  # an end-to-end job: keeps the default suite within 3 minutes
def test_a_dp_adaptation_sampled_with_prss_is_accounted_as_the_adaptation_alone(run_job, tmp_path):
    alone, _ = run_job([*COMPOSED, "guidance=none"], tmp_path / "alone")
    both, out = run_job([*COMPOSED, "guidance=prss", "guidance.paraphrases=nearest", "guidance.num_paraphrases=4",
                         "guidance.lambda_ss=q0.5", "guidance.calibration_images=8"], tmp_path / "prss")
    privacy = {k: v for k, v in alone.items() if k.startswith("privacy/")}
    assert privacy["privacy/epsilon"] <= 1.0 and len(privacy) > 3
    assert {k: v for k, v in both.items() if k.startswith("privacy/")} == privacy  # guidance is post-processing
    assert (both["method"], both["guidance"]) == ("dpagg_ti", "prss")
    assert both["guidance/calibration_images"] == 8 and both["time/calibrate_s"] > 0
    rows = read_index(out / "images")
    assert len(rows) == both["eval/num_images"]
    # The per-image stats are PRSS's own: triggered exactly where m_T exceeds the calibrated lambda_ss.
    assert [r["triggered"] for r in rows] == [r["first_step_magnitude"] > both["guidance/lambda_ss"] for r in rows]
    assert 0 < sum(r["triggered"] for r in rows) < len(rows)  # the median of the calibration splits them
    assert sum(r["triggered"] for r in rows) / len(rows) == pytest.approx(both["eval/trigger_fraction"])
