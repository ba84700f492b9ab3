"""report.html: the table's numbers and marks, the aligned gallery, links, thumbnails, bad input."""

import json
import math
from pathlib import Path

import pytest

from benchmark.report.report import main, make_report
from benchmark.report.synthetic import make_synthetic_sweep, synthetic_metrics, write_job
from tests.report._page import parse


def _headline(page):
    head, *rows = page.tables["headline"]
    return [c.get("data-metric") or c["text"].strip() for c in head], rows


def test_table_marks_the_best_row_by_the_declared_direction_and_the_release_split(tmp_path):
    make_synthetic_sweep(tmp_path, methods=("dpagg_ti", "dpsgd_ti"), epsilons=(1.0, 4.0, math.inf), seeds=(0, 1),
                         images_per_job=4)
    summary, paths = make_report(tmp_path)
    page = parse(paths["html"])
    names, rows = _headline(page)
    assert len(rows) == len(summary.rows) == 6
    for metric, pick in (("eval/fid", min), ("eval/clip_score", max), ("eval/adapt_set_fraction_copied", min)):
        col = names.index(metric)
        means = [r.mean(metric) for r in summary.rows]
        marked = [i for i, row in enumerate(rows) if "best" in row[col].get("class", "")]
        assert marked == [means.index(pick(means))], metric
        assert [float(row[col]["data-v"]) for row in rows] == means  # the sort key is the exact mean
    head = {c.get("data-metric"): c for c in page.tables["headline"][0] if c.get("data-metric")}
    assert head["privacy/epsilon"]["class"] == "release" and "DP release" in head["privacy/epsilon"]["text"]
    assert head["eval/fid"]["class"] == "privatedata" and "↓" in head["eval/fid"]["text"]
    assert head["eval/adapt_set_fraction_copied"]["class"] == "privatedata"
    assert head["eval/clip_score"]["class"] == "evalonly" and "↑" in head["eval/clip_score"]["text"]
    assert "eval/num_images" not in head  # descriptive keys stay out of the headline
    # A mean ± std cell shows the row's mean and sample std.
    fid = rows[0][names.index("eval/fid")]["text"]
    assert fid.startswith(f"{summary.rows[0].mean('eval/fid'):.4g} ± ")


def test_gallery_aligns_the_same_prompt_and_seed_across_rows(tmp_path):
    make_synthetic_sweep(tmp_path, methods=("dpagg_ti", "dpsgd_ti"), epsilons=(1.0, math.inf), seeds=(3, 5),
                         images_per_job=8)
    _, paths = make_report(tmp_path, images_per_prompt=1, max_prompts=3)
    head, *rows = parse(paths["html"]).tables["gallery"]
    columns = [c["text"] for c in head[1:]]
    assert len(columns) == 3 and len(rows) == 4  # first image of each of the first 3 prompts
    for row in rows:
        assert "seed 3" in row[0]["text"]  # every row shows the replicate with the same seed
        for col, cell in zip(columns, row[1:]):
            (img,) = cell["img"]
            image = (paths["html"].parent / img["src"]).resolve()
            index = [json.loads(line) for line in (image.parent / "index.jsonl").read_text().splitlines()]
            item = next(r for r in index if r["file"] == image.name)
            assert f"p{item['prompt_index']} · s{item['seed']}" in col
            assert img["title"].startswith(item["text"]) and "first_step_magnitude=" in img["title"]


def test_every_link_and_image_stays_inside_the_folder_and_exists(tmp_path):
    make_synthetic_sweep(tmp_path, methods=("dpagg_ti",), epsilons=(1.0, math.inf), seeds=(0,), images_per_job=4)
    _, paths = make_report(tmp_path)
    page = parse(paths["html"])
    assert page.sources and page.links
    for ref in page.sources + page.links:
        if ref.startswith("#"):
            continue
        assert "://" not in ref and not ref.startswith("/"), ref
        target = (tmp_path / ref).resolve()
        assert target.exists() and target.is_relative_to(tmp_path.resolve()), ref
    assert {Path(r).name for r in page.links} >= {"metrics.json", "config.yaml"}


@pytest.mark.slow  # keeps the default suite within 3 minutes; CI's slow pass runs it
def test_big_images_are_thumbnailed_once_and_reused(tmp_path):
    make_synthetic_sweep(tmp_path, methods=("dpagg_ti",), epsilons=(1.0,), seeds=(0,), images_per_job=4,
                         image_size=512)
    _, paths = make_report(tmp_path)
    thumbs = sorted((tmp_path / "report_assets" / "thumbs").glob("*.png"))
    assert len(thumbs) == 4
    gallery = [img["src"] for row in parse(paths["html"]).tables["gallery"] for c in row for img in c["img"]]
    assert len(gallery) == 4 and all(s.startswith("report_assets/thumbs/") for s in gallery)
    from PIL import Image

    assert all(max(Image.open(t).size) == 128 for t in thumbs)
    stamps = {t: t.stat().st_mtime_ns for t in thumbs}
    make_report(tmp_path)
    assert sorted((tmp_path / "report_assets" / "thumbs").glob("*.png")) == thumbs
    assert {t: t.stat().st_mtime_ns for t in thumbs} == stamps  # reused, not rewritten


def test_out_elsewhere_embeds_the_images(tmp_path):
    sweep, out = tmp_path / "sweep", tmp_path / "elsewhere"
    make_synthetic_sweep(sweep, methods=("dpagg_ti",), epsilons=(1.0,), seeds=(0,), images_per_job=2)
    _, paths = make_report(sweep, out)
    sources = [s for s in parse(paths["html"]).sources if "vs_" not in s]  # the plots lie in out
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)


def test_a_sweep_of_broken_runs_still_renders_listing_each_with_its_reason(tmp_path):
    make_synthetic_sweep(tmp_path, methods=("dpagg_ti",), epsilons=(1.0,), seeds=(0, 1), images_per_job=4)
    good = sorted(tmp_path.glob("0_*"))[0]
    (good / "images" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # a corrupt image
    with open(good / "images" / "index.jsonl", "a") as f:
        f.write('{"file": "00009.png", "prompt_index": 9')  # a half-written line
    corrupt = write_job(tmp_path, 10, synthetic_metrics("dpsgd_ti", 1.0, 0))
    (corrupt / "metrics.json").write_text('{"method": "dpsgd_ti", "eval/fid": ')
    half = write_job(tmp_path, 11, synthetic_metrics("dpsgd_ti", 4.0, 0), images_per_job=2)
    (half / "metrics.json").unlink()  # killed while evaluating
    sampling = tmp_path / "12_killed_while_sampling"
    (sampling / "images").mkdir(parents=True)
    (sampling / "images" / "00000.png").write_bytes((good / "images" / "00000.png").read_bytes())
    skipped = tmp_path / "13_none_none_strong_s0" / ".hydra"
    skipped.mkdir(parents=True)
    (skipped / "config.yaml").write_text("seed: 0\nguidance: {name: none}\nstrength: {name: strong}\n"
                                         "privacy: {epsilon: inf}\n")
    failed = tmp_path / "14_dpagg_ti_none_eps2_s0"
    (failed / ".hydra").mkdir(parents=True)
    (failed / "__main__.log").write_text("[2026-12-01 09:00:00,000][benchmark][ERROR] - ConfigError: "
                                         "method.bound: expected clip or normalize\n")
    (tmp_path / "15_started" / ".hydra").mkdir(parents=True)
    assert main([str(tmp_path)]) == 0
    page = parse(tmp_path / "report.html")
    listed = {row[1]["text"]: (row[0]["text"], row[2]["text"]) for row in page.tables["problems"][1:]}
    assert listed[corrupt.name][0] == "failed" and "unreadable" in listed[corrupt.name][1]
    assert listed[half.name] == ("half-written", "images but no metrics.json: stopped while evaluating")
    assert listed[sampling.name][0] == "half-written" and "index.jsonl" in listed[sampling.name][1]
    assert listed[skipped.parent.name][0] == "skipped" and "no strength preset 'strong'" in listed[skipped.parent.name][1]
    assert listed[failed.name] == ("failed", "ConfigError: method.bound: expected clip or normalize")
    assert listed["15_started"][0] == "unfinished"
    assert len(listed) == 6
    html = (tmp_path / "report.html").read_text()
    assert "1 malformed lines" in html and "00001.png: unreadable image" in html
    assert not any(s.endswith("00001.png") for s in page.sources)  # the corrupt image is listed, not shown


@pytest.mark.parametrize("finished_ti", [
    True,  # known from ti's finished job at epsilon inf (privacy/private: false)
    pytest.param(False, marks=pytest.mark.slow),  # unknown: read from its class (imports model code)
])
def test_a_non_private_method_at_a_finite_epsilon_is_listed_as_skipped(tmp_path, finished_ti):
    make_synthetic_sweep(tmp_path, methods=("dpagg_ti",), epsilons=(1.0,), seeds=(0,))
    if finished_ti:
        write_job(tmp_path, 2, synthetic_metrics("ti", math.inf, 0))
    job = tmp_path / "3_ti_none_eps1_s0" / ".hydra"
    job.mkdir(parents=True)
    (job / "config.yaml").write_text("method: {name: ti, _target_: benchmark.adapt.textual_inversion.TextualInversion}\n"
                                     "guidance: {name: none}\nprivacy: {epsilon: 1.0}\n")
    _, paths = make_report(tmp_path)
    (row,) = parse(paths["html"]).tables["problems"][1:]
    assert row[0]["text"] == "skipped" and "ti is not differentially private" in row[2]["text"]


def test_an_empty_sweep_renders_a_page_that_says_so(tmp_path):
    assert main([str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "No finished runs" in html and "No images" in html


def test_runs_link_their_released_artifact_marked_dp_or_not(tmp_path):
    dp = write_job(tmp_path, 0, synthetic_metrics("dpagg_ti", 1.0, 0))
    plain = write_job(tmp_path, 1, synthetic_metrics("ti", math.inf, 0))
    for run in (dp, plain):
        (run / "learned_embeds.safetensors").write_bytes(b"x")
    _, paths = make_report(tmp_path)
    html = paths["html"].read_text()
    runs = {line.split("<code>")[1].split("</code>")[0]: line for line in html.splitlines() if "<li>seed" in line}
    assert "learned_embeds.safetensors" in runs[dp.name] and "DP release" in runs[dp.name]
    assert "not DP: private" in runs[plain.name] and "DP release" not in runs[plain.name]


def test_gallery_marks_memorized_prompts(tmp_path):
    make_synthetic_sweep(tmp_path, methods=(), seeds=(0,), mitigation={"prss": (0.1,)}, images_per_job=4)
    _, paths = make_report(tmp_path, images_per_prompt=1)
    head = [c["text"] for c in parse(paths["html"]).tables["gallery"][0][1:]]
    assert len(head) == 2 and head[0].startswith("[memorized] a circle") and "[memorized]" not in head[1]
