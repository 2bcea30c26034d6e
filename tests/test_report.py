"""`peakclips report`: the HTML report of the sample dataset, opened in headless Debian
Chromium (driven by playwright, which downloads no browser of its own): it renders every plot
and timeline, logs no console error, loads nothing from outside, and looks like something."""

import shutil
import tempfile
from pathlib import Path

import pytest

from peakclips.cli import main
from peakclips.report import render_html, timeline

CHROMIUM = "/usr/bin/chromium"  # Debian's; `make test` installs it (make sysdeps)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def open_in_chromium(html: Path, screenshot: Path, width: int = 1280, height: int = 2000, full_page=False) -> dict:
    """Load a page in headless Chromium; returns what it saw (console errors, requests, counts)."""
    from playwright.sync_api import sync_playwright

    seen = {"errors": [], "requests": []}
    with tempfile.TemporaryDirectory(prefix="pcchrome") as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height})
        try:
            page = browser.new_page()
            page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen["errors"].append(f"page error: {e}"))
            page.on("requestfailed", lambda r: seen["errors"].append(f"failed: {r.url[:80]}"))
            page.on("request", lambda r: seen["requests"].append(r.url[:80]))
            page.goto(html.as_uri(), wait_until="load")
            seen["title"] = page.title()
            seen["text"] = page.inner_text("body")
            seen["videos"] = page.locator("section.video").count()
            seen["broken_images"] = page.evaluate(
                "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
            seen["images"] = page.evaluate("document.images.length")
            page.screenshot(path=str(screenshot), full_page=full_page)
        finally:
            browser.close()
    return seen


@pytest.mark.slow
def test_sample_report_renders_in_headless_chromium(sample_output, tmp_path):
    import numpy as np
    from PIL import Image

    out, _ = sample_output
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    html = tmp_path / "report" / "index.html"
    assert sorted(p.name for p in html.parent.glob("*.png")) == [
        "drops.png", "durations.png", "funnel.png", "highlights.png", "scene_lengths.png", "scores.png"]
    seen = open_in_chromium(html, tmp_path / "report.png")
    assert seen["errors"] == []
    # Self-contained: the page itself is the only thing loaded (images are data URIs).
    assert [u for u in seen["requests"] if not u.startswith(("file://", "data:"))] == []
    assert seen["title"] == f"PeakClips report: {out.name}"
    assert seen["videos"] == 5 and "a man on a canal bridge looking up at a giant robot" in seen["text"]
    assert seen["images"] == 6 + 5 * 16 and seen["broken_images"] == 0  # plots + 16 thumbnails per video
    pixels = np.asarray(Image.open(tmp_path / "report.png").convert("L"), dtype=float)
    assert pixels.std() > 20  # not an empty page


def test_model_text_is_escaped_not_markup():
    sample = {"key": "k", "video_id": "<b>id</b>", "duration_s": 4.0, "source": None, "license": None,
              "summary": "<script>alert(1)</script>",
              "scenes": [{"scene_id": 0, "start_s": 0.0, "end_s": 4.0, "caption": "<img src=x onerror=alert(1)>"}],
              "chapters": [], "queries": [{"query": "q\"><script>", "origin": "generated", "highlights": [],
                                           "scene_scores": [{"llm": 5, "clip": None, "final": 5.0, "reason": "<i>r"}]}]}
    stats = {"shards": 1, "videos": {"ok": 1}, "queries": {"ok": 1}, "highlights": 0, "llm": {},
             "video_drop_reasons": {}, "query_drop_reasons": {}, "errors": {}, "stage_seconds": {},
             "incomplete_shards": [], "duration_s": {"n": 0}, "highlight_s": {"n": 0}, "annotator": None,
             "config_hashes": []}
    html = render_html("out/x", stats, {n: b"" for n in ("funnel.png", "drops.png", "durations.png",
                                                        "scene_lengths.png", "scores.png", "highlights.png")},
                       [dict(timeline(sample), thumbs=[])])
    assert "<script" not in html and "<img src=x" not in html and "<b>id" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def screenshot_for_docs(output: str, dest: str) -> None:  # pragma: no cover - a maintenance helper
    """Regenerate docs/report.png: `python -c "from tests.test_report import screenshot_for_docs as s;
    s('out/sample', 'docs/report.png')"` after `make peakclips`."""
    with tempfile.TemporaryDirectory() as tmp:
        main(["report", output, "--out", tmp, "--max-videos", "3"])
        seen = open_in_chromium(Path(tmp) / "index.html", Path(tmp) / "shot.png", height=900, full_page=True)
        assert seen["errors"] == []
        shutil.copy(Path(tmp) / "shot.png", dest)
