"""cmav-data view in a real browser (Debian's Chromium via Playwright), from file:// and from a
static server on 127.0.0.1: no console error or failed request, images decode, audio is 0.5 s,
filters and paging work. Screenshots of each page type go to the test's tmp dir; with
CMAV_DOCS_SCREENSHOT=1 the overview's also goes to docs/viewer.png (for the README).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser import WatchedPage, chromium, require_browser, static_server
from cmav_data.view import build_view
from test_view import PAIRS, make_view_dataset

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    require_browser()
    root = make_view_dataset(tmp_path_factory.mktemp("view_browser"))
    return build_view(root, page_size=3, progress=False).out


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(site):
    with static_server(site) as url:
        yield url


def _base(how: str, site: Path, server: str) -> str:
    return site.as_uri() + "/" if how == "file" else server


@pytest.mark.parametrize("how", ["file", "http"])
def test_every_page_loads_clean_with_images_and_half_second_audio(how, site, server, browser):
    base = _base(how, site, server)
    pages = ["index.html"] + sorted(f"rec/{p.name}" for p in (site / "rec").glob("*.html"))
    assert len(pages) == 1 + 6 * 3
    watched = WatchedPage(browser)
    n_images = n_audio = 0
    for rel in pages:
        watched.goto(base + rel)
        widths = watched.visible_image_widths()
        assert widths and all(w > 0 for w in widths.values()), (rel, widths)
        durations = watched.audio_durations()
        if rel != "index.html":
            assert durations and all(abs(d - 0.5) < 0.01 for d in durations.values()), (rel, durations)
        n_images += len(widths)
        n_audio += len(durations)
    assert watched.problems == []
    assert n_audio == 6 * PAIRS and n_images >= 2 * 6 * PAIRS
    watched.close()


def test_class_filter_changes_the_visible_pairs(site, browser):
    watched = WatchedPage(browser)
    watched.goto(site.as_uri() + "/index.html")
    page = watched.page
    visible = "Array.from(document.querySelectorAll('.pair')).filter(e => e.offsetParent !== null).map(e => e.dataset.class)"
    before = page.evaluate(visible)
    assert sorted(set(before)) == ["cello", "flute", "trumpet"]
    page.select_option("#f-class", "flute")
    after = page.evaluate(visible)
    assert after and set(after) == {"flute"} and len(after) < len(before)
    assert page.inner_text("#n-visible") == str(len(after))
    rows = page.evaluate("Array.from(document.querySelectorAll('#recordings tr[data-class]'))"
                         ".filter(e => e.offsetParent !== null).map(e => e.dataset.class)")
    assert rows == ["flute", "flute"]
    page.select_option("#f-class", "")
    page.select_option("#f-silent", "true")  # the tiny dataset has no silent pair
    assert page.evaluate(visible) == [] and page.inner_text("#n-visible") == "0"
    assert watched.problems == []


def test_paging_reaches_the_last_pair_and_play_in_order_plays(site, server, browser, tmp_path):
    watched = WatchedPage(browser)
    page = watched.page
    watched.goto(server + "index.html")
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    if os.environ.get("CMAV_DOCS_SCREENSHOT") == "1":
        page.set_viewport_size({"width": 1100, "height": 800})
        page.screenshot(path=str(REPO / "docs/viewer.png"))
    page.click('a[href="rec/cello01-001.html"]')
    page.wait_for_load_state("load")
    page.screenshot(path=str(tmp_path / "recording.png"), full_page=True)
    seen = []
    for _ in range(10):
        seen += page.evaluate("Array.from(document.querySelectorAll('.pair')).map(e => e.dataset.id)")
        if page.query_selector("#next") is None:
            break
        page.click("#next")
        page.wait_for_load_state("load")
    assert seen == [f"cello01_{500 + 100 * k}" for k in range(PAIRS)]
    assert "page 3 of 3" in page.inner_text(".nav")
    page.click("#play")
    page.wait_for_function("document.querySelector('.pair.playing audio') && "
                           "!document.querySelector('.pair.playing audio').paused", timeout=5000)
    assert watched.problems == []
    assert (tmp_path / "overview.png").stat().st_size > 0 and (tmp_path / "recording.png").stat().st_size > 0
