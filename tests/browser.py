"""Helpers of the browser tests: Debian's Chromium driven by Playwright, and a static server.

Playwright's own browser download is not used (nor reachable): it launches the system Chromium.
When either is missing the tests skip with a reason saying how to enable them.
"""

from __future__ import annotations

import functools
import shutil
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home, which a closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ENABLE = "as root: apt-get install -y chromium; and: .venv/bin/python -m pip install playwright (never `playwright install`)"


def require_browser() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(f"playwright is not installed; to run the browser tests, {ENABLE}")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing; to run the browser tests, {ENABLE}")


@contextmanager
def chromium() -> Iterator:
    """A headless system Chromium (a Playwright Browser)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def static_server(root: Path) -> Iterator[str]:
    """A plain static file server (http.server) on 127.0.0.1 serving ``root``; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class WatchedPage:
    """A page that records console errors, uncaught exceptions, failed requests and HTTP errors."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"exception: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="load")
        # Every image loaded (or failed) and every audio element has read its header.
        self.page.wait_for_function(
            "Array.from(document.images).every(i => i.complete) && "
            "Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1 || a.error)",
            timeout=15000)

    def visible_image_widths(self) -> dict[str, int]:
        return self.page.evaluate(
            "Object.fromEntries(Array.from(document.images).filter(i => i.offsetParent !== null)"
            ".map(i => [i.currentSrc, i.naturalWidth]))")

    def audio_durations(self) -> dict[str, float]:
        return self.page.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('audio')).map(a => [a.currentSrc, a.duration]))")

    def close(self) -> None:
        self.page.close()
