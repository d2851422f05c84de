"""Open a report's index.html in headless Chromium (selenium + chromedriver, Debian's `chromium` and
`chromium-driver`) and measure what a reader sees at a given viewport width: every image's natural size and
alt text, every element wider than the viewport, the verdict that opens each dataset, and a full-page
screenshot. Used by tests/report/test_browser.py; `python tests/report/browser.py REPORT_DIR SHOT.png` checks
any built report (e.g. the smoke run's reports/benchmark)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER = ("chromedriver",)

#: what the page reports about itself, measured with every <details> opened (closed ones take no space)
MEASURE = r"""
document.querySelectorAll('details').forEach(d => { d.open = true; });
const vw = document.documentElement.clientWidth;
const wide = [];
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (r.right > vw + 0.5 || r.left < -0.5) {
    wide.push({tag: el.tagName.toLowerCase(), cls: el.className || '', left: r.left, right: r.right,
               text: (el.textContent || '').trim().slice(0, 80)});
  }
}
const sections = Array.from(document.querySelectorAll('section.dataset')).map(s => {
  const kids = Array.from(s.children);
  return {id: s.id, heading: kids[0] ? kids[0].tagName.toLowerCase() : null,
          first: kids[1] ? kids[1].className : null,
          verdict: kids[1] && kids[1].classList.contains('verdict') ? kids[1].textContent.trim() : null};
});
return {
  viewport: vw, scrollWidth: document.documentElement.scrollWidth, bodyScrollWidth: document.body.scrollWidth,
  height: document.documentElement.scrollHeight,
  images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), alt: i.getAttribute('alt'),
                                                  complete: i.complete, naturalWidth: i.naturalWidth,
                                                  width: i.getBoundingClientRect().width})),
  wide: wide, sections: sections,
  order: Array.from(document.querySelectorAll('section.dataset, h2')).map(e => e.id || e.textContent.trim()),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
};
"""


def find_chromium() -> tuple[str | None, str | None, str]:
    """(browser, driver, why not) from PATH (CHROMIUM_BIN / CHROMEDRIVER_BIN override)."""
    browser = os.environ.get("CHROMIUM_BIN") or next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = os.environ.get("CHROMEDRIVER_BIN") or next((p for p in map(shutil.which, DRIVER) if p), None)
    missing = [what for what, path in (("chromium", browser), ("chromedriver", driver)) if not path]
    why = (f"{' and '.join(missing)} not found on PATH (Debian: apt-get install chromium chromium-driver; "
           "`make test` installs them where it runs as root with apt: Makefile, browser-deps)") if missing else ""
    return browser, driver, why


def open_report(index: Path, screenshot: Path | None = None, width: int = 1280, height: int = 900,
                browser: str | None = None, driver: str | None = None) -> dict:
    """Load `index` at a `width` x `height` viewport, wait for the page and its images, return MEASURE's
    result; write a full-page PNG to `screenshot`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    if not Path(index).is_file():
        raise FileNotFoundError(f"{index}: no such report page")
    if browser is None or driver is None:
        b, d, why = find_chromium()
        if why:
            raise FileNotFoundError(why)
        browser, driver = browser or b, driver or d
    profile = tempfile.mkdtemp(prefix="fewgan-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    try:
        drv.set_page_load_timeout(60)
        # the viewport exactly `width` CSS pixels wide, whatever the window decorations
        drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        drv.get(Path(index).resolve().as_uri())
        WebDriverWait(drv, 30).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))
        result = drv.execute_script(MEASURE)
        result["index"] = str(Path(index).resolve())  # where the page's relative links start
        if screenshot is not None:
            full = int(min(result["height"], 30000))
            drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": width, "height": full, "deviceScaleFactor": 1, "mobile": False})
            shot = drv.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        return result
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def problems(result: dict) -> list[str]:
    """What a reader would trip over: images that did not load or have no alt text, sideways scrolling,
    elements wider than the viewport, broken links, a dataset section that does not open with its verdict."""
    out = []
    for im in result["images"]:
        src = im["src"] if len(im["src"] or "") <= 120 else im["src"][:117] + "..."
        if not im["naturalWidth"]:
            out.append(f"image did not load: {src}")
        if not (im["alt"] or "").strip():
            out.append(f"image without alt text: {src}")
    if result["scrollWidth"] > result["viewport"]:
        out.append(f"page scrolls sideways: {result['scrollWidth']} px content in a {result['viewport']} px viewport")
    out += [f"wider than the viewport: <{w['tag']} class={w['cls']!r}> {w['left']:.0f}..{w['right']:.0f} px "
            f"({w['text']!r})" for w in result["wide"]]
    out += broken_links(result)
    if not result["sections"]:
        out.append("no dataset section (section.dataset)")
    for s in result["sections"]:
        if not s["verdict"]:
            out.append(f"dataset section {s['id']} does not open with its verdict (first: {s['first']!r})")
    return out


if __name__ == "__main__":
    report, shot = Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None
    res = open_report(report / "index.html" if report.is_dir() else report, shot)
    bad = problems(res)
    print(json.dumps({"images": len(res["images"]), "viewport": res["viewport"], "height": res["height"],
                      "sections": [s["id"] for s in res["sections"]], "problems": bad}, indent=1))
    sys.exit(1 if bad else 0)


def broken_links(result: dict) -> list[str]:
    """Links of the page that lead nowhere: an anchor no element has as its id, or a relative link to a file that
    is not beside the page. Links with a scheme (https:, mailto:) leave the report and are not followed."""
    from urllib.parse import unquote, urlsplit

    ids = set(result.get("ids") or [])
    base = Path(result["index"]).parent if result.get("index") else None
    out = []
    for href in result.get("links") or []:
        url = urlsplit(href)
        if url.scheme or url.netloc:
            continue
        if not url.path:
            if url.fragment and url.fragment not in ids:
                out.append(f"broken link: {href} (no element has the id {url.fragment!r})")
        elif base is not None and not (base / unquote(url.path)).exists():
            out.append(f"broken link: {href} (no file {base / unquote(url.path)})")
    return out
