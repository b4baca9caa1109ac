"""report.html / results.html: a report's Markdown lines as a static page (tables, images, bullets),
with audio players; checked as text and in Chromium (images decode, players report 0.5 s)."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from PIL import Image

from browser import WatchedPage, chromium
from cmav_data.atomic import write_text
from cmav_data.view.report_page import audio_table, markdown_to_html, report_page

MARKDOWN = """# run `x1`

Suite `fast`; **two** lines
of one paragraph.

## Results

| row | accuracy |
|---|---|
| S2I-C | 0.50 ± 0.10 (95% CI 0.3–0.7, 3 seeds) |
| real <x> | 0.90 |

- one
- two `code`

![S2I samples](figures/s2i.png)
"""


def test_markdown_subset_becomes_html():
    html = markdown_to_html(MARKDOWN)
    assert "<h1>run <code>x1</code></h1>" in html and "<h2>Results</h2>" in html
    assert "<p>Suite <code>fast</code>; <b>two</b> lines of one paragraph.</p>" in html
    assert "<tr><th>row</th><th>accuracy</th></tr><tr><td>S2I-C</td>" in html and "---" not in html
    assert "<td>real &lt;x&gt;</td>" in html and "<ul><li>one</li><li>two <code>code</code></li></ul>" in html
    assert '<img src="figures/s2i.png" alt="S2I samples">' in html


def test_report_page_in_the_browser(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "figures").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "figures/s2i.png")
    for name in ("real", "I2S"):
        sf.write(tmp_path / f"{name}.wav", rng.uniform(-0.2, 0.2, 22050).astype(np.float32), 44100, subtype="PCM_16")
    players = audio_table("I2S sounds", ["real", "I2S"], [("cello01_500", ["real.wav", "I2S.wav"])])
    write_text(tmp_path / "report.html", report_page("run x1", MARKDOWN, players))
    with chromium() as browser:
        watched = WatchedPage(browser)
        watched.goto((tmp_path / "report.html").as_uri())
        widths = watched.visible_image_widths()
        durations = watched.audio_durations()
        watched.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert list(widths.values()) == [60] and len(durations) == 2
        assert all(abs(d - 0.5) < 0.01 for d in durations.values())
        assert watched.problems == []
