"""The report in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`, driven by
selenium) opens the report built from the fixture runs at a 1280 px viewport. Every image loads
(naturalWidth > 0) and has alt text, no element is wider than the viewport (every <details> opened), and each
dataset section opens with its verdict. A full-page screenshot is kept in the test's temp folder (the CI
artifact; not committed). Skips, saying why, where selenium, chromium or chromedriver is missing.

FEWGAN_REPORT_DIR=<a built reports/benchmark> adds the same checks on that report (e.g. the smoke run's:
`make smoke`, then `FEWGAN_REPORT_DIR=reports/benchmark pytest tests/report/test_browser.py`)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from .browser import find_chromium, open_report, problems

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
BROWSER, DRIVER, WHY = find_chromium()
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY or "")


def test_report_in_chromium_at_1280_px(built, tmp_path):
    shot = tmp_path / "report-1280.png"
    t0 = time.monotonic()
    res = open_report(built["out"] / "index.html", shot, width=1280, browser=BROWSER, driver=DRIVER)
    print(f"\nscreenshot: {shot} ({time.monotonic() - t0:.1f} s in Chromium)")
    assert res["viewport"] == 1280
    assert problems(res) == []
    # every <img> of the page was measured, and each one loaded
    assert len(res["images"]) == len(re.findall(r"<img ", built["html"])) > 0
    assert all(im["naturalWidth"] > 0 and im["alt"] for im in res["images"])
    assert max(im["width"] for im in res["images"]) <= 1280
    # each dataset section opens with its verdict, and the sections come before the every-metric table
    assert [s["heading"] for s in res["sections"]] == ["h2"] * len(built["datasets"])
    assert all(s["verdict"] and "No verdict yet" in s["verdict"] for s in res["sections"])
    order = res["order"]
    assert max(order.index(s["id"]) for s in res["sections"]) < order.index("results")
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] == 1280 and im.size[1] >= res["height"] * 0.9


def test_the_checks_catch_a_broken_page(tmp_path):
    """The same measurements on a page that is broken on purpose: they must see each fault."""
    (tmp_path / "index.html").write_text(
        '<!DOCTYPE html><html><body style="margin:0">'
        '<section class="dataset" id="ds-x"><h2>x</h2><p>no verdict here</p></section>'
        '<img src="missing.png" alt="gone"><img src="ok.png">'
        '<a href="#ds-x">ok</a><a href="#nowhere">x</a><a href="ok.png">ok</a><a href="gone.csv">x</a>'
        '<a href="https://example.org/x">outside</a>'
        '<details><table><tr><td>' + "x" * 400 + "</td></tr></table></details></body></html>")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    found = problems(open_report(tmp_path / "index.html", None, width=1280, browser=BROWSER, driver=DRIVER))
    assert "image did not load: missing.png" in found
    assert "image without alt text: ok.png" in found
    assert any(f.startswith("page scrolls sideways") for f in found)
    assert any(f.startswith("wider than the viewport: <td") for f in found)  # inside a closed <details>
    assert any("ds-x does not open with its verdict" in f for f in found)
    # broken links, and only those: the anchor and the file that exist pass, the external link is not followed
    assert [f.split(" (")[0] for f in found if f.startswith("broken link")] == ["broken link: #nowhere",
                                                                                "broken link: gone.csv"]


@pytest.mark.skipif(not os.environ.get("FEWGAN_REPORT_DIR"), reason="FEWGAN_REPORT_DIR (a built report) not set")
def test_a_built_report_in_chromium_at_1280_px(tmp_path):
    """The checks above on a report of real runs (the smoke run's), screenshot in the test's temp folder."""
    report = Path(os.environ["FEWGAN_REPORT_DIR"])
    shot = tmp_path / "built-report-1280.png"
    res = open_report(report / "index.html", shot, width=1280, browser=BROWSER, driver=DRIVER)
    print(f"\nscreenshot: {shot}")
    assert problems(res) == [] and res["images"] and res["sections"]
