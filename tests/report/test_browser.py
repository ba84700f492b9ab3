"""report.html in a real headless Chromium: every image loads, headers sort, no console errors.

Needs the system's ``chromium`` (Debian: ``apt-get install -y chromium chromium-driver``);
skipped, with the reason, only where no Chromium is on PATH. Each check runs through
chromedriver (where installed) and through DevTools on a pipe (Chromium alone).
"""

import math
from pathlib import Path

import pytest

from benchmark.report.browser import find_chromium, launch
from benchmark.report.report import make_report
from benchmark.report.synthetic import make_synthetic_sweep, synthetic_metrics, write_job

_, DRIVER, MISSING = find_chromium()
pytestmark = [pytest.mark.skipif(bool(MISSING), reason=f"no headless Chromium for the browser test: {MISSING}"),
              pytest.mark.slow]  # a real browser (~11 s): CI's slow pass runs it
BACKENDS = [pytest.param("chromedriver", marks=pytest.mark.skipif(DRIVER is None, reason="no chromedriver on PATH "
                                                                  "(the pipe backend runs the same checks)")),
            "pipe"]

COLUMN_VALUES = """
const col = Array.from(document.querySelectorAll('#headline thead th')).findIndex(
    th => th.getAttribute('data-metric') === arguments[0] || th.textContent.trim() === arguments[0]);
return Array.from(document.querySelectorAll('#headline tbody tr')).map(tr => tr.cells[col].getAttribute('data-v'));
"""


@pytest.fixture(scope="module", params=BACKENDS)
def page(tmp_path_factory, request):
    sweep = tmp_path_factory.mktemp("sweep")
    make_synthetic_sweep(sweep, methods=("dpagg_ti", "dpsgd_ti"), epsilons=(1.0, 4.0, math.inf), seeds=(0, 1),
                         mitigation={"prss": (0.1, 0.3)}, images_per_job=6)
    write_job(sweep, 40, synthetic_metrics("dpsgd_lora", 2.0, 0), images_per_job=6, image_size=300)  # thumbnailed
    (sweep / "41_broken").mkdir()
    (sweep / "41_broken" / "metrics.json").write_text("{")
    summary, paths = make_report(sweep)
    with launch(request.param) as browser:
        browser.open(paths["html"])
        yield browser, summary, paths


def test_every_image_loads(page):
    browser, summary, _ = page
    count = browser.run("return document.querySelectorAll('table.gallery img').length;")
    assert count == len(summary.rows) * 6  # each row's shown run: all its 6 images (3 prompts x 2)
    assert browser.run("return document.images.length;") == count + 2  # and both plots
    assert browser.broken_images() == []


def test_clicking_a_header_sorts_the_table(page):
    browser, summary, _ = page
    before = [float(v) for v in browser.run(COLUMN_VALUES, "eval/fid")]
    assert before == [r.mean("eval/fid") for r in summary.rows] and before != sorted(before)
    browser.click('#headline th[data-metric="eval/fid"]')
    assert [float(v) for v in browser.run(COLUMN_VALUES, "eval/fid")] == sorted(before)
    browser.click('#headline th[data-metric="eval/fid"]')
    assert [float(v) for v in browser.run(COLUMN_VALUES, "eval/fid")] == sorted(before, reverse=True)
    # Text columns sort as text; rows move whole (the method column follows the FID order).
    assert browser.run(COLUMN_VALUES, "method") != sorted(browser.run(COLUMN_VALUES, "method"))  # in FID order now
    browser.click('#headline thead th:nth-child(1)')
    methods = browser.run(COLUMN_VALUES, "method")
    assert methods == sorted(methods)
    by_fid = {round(r.mean("eval/fid"), 9): r.method for r in summary.rows}
    pairs = zip(browser.run(COLUMN_VALUES, "eval/fid"), methods)
    assert all(by_fid[round(float(f), 9)] == m for f, m in pairs)


def test_no_console_errors(page):
    browser, _, _ = page
    browser.run("document.querySelectorAll('details').forEach(d => d.open = true);")
    assert [e for e in browser.console() if e.get("level") == "SEVERE"] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_checks_see_a_broken_image_and_a_script_error(tmp_path, backend):
    """The checks above can fail: a missing image and a throwing script are both caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body>'
                   '<img src="missing.png"><script>undefined_function();</script></body></html>')
    with launch(backend) as browser:
        browser.open(bad)
        assert browser.broken_images() == ["missing.png"]
        messages = [e["message"] for e in browser.console() if e.get("level") == "SEVERE"]
        assert any("missing.png" in m for m in messages) and any("undefined_function" in m for m in messages)


def test_the_committed_reference_page_loads_cleanly():
    page = Path(__file__).resolve().parents[2] / "results/reference/synthetic_example/report.html"
    with launch() as browser:
        browser.open(page)
        assert browser.run("return document.images.length;") > 50 and browser.broken_images() == []
        assert [e for e in browser.console() if e.get("level") == "SEVERE"] == []
