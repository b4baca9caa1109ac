"""The blind rating page (rate.html + rate_key.json) and `cmav-bench ratings`, on a fake run
folder made here: blindness, determinism, the join and its summary, bad CSVs; and a scripted rater
in a real browser (Chromium via Playwright) whose exported CSV gives the expected means."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from PIL import Image

from browser import WatchedPage, chromium
from cmav_data.view.rate import KEY_NAME, PAGE_NAME, RatingSample, write_rating_page
from cmav_models.cli import main as bench
from cmav_models.ratings import krippendorff_alpha_interval, read_key, read_ratings, summarize_ratings

VARIANTS = {"real": 5, "S2I-C": 4, "S2I-N": 3, "S2I-A": 2}  # the scripted rater's score of each
PER_VARIANT = 3


def make_fake_run(run: Path) -> list[RatingSample]:
    """Sample files under names that tell their variant (the page must not), images and I2S sounds."""
    rng = np.random.default_rng(0)
    samples = []
    for variant in VARIANTS:
        for k in range(PER_VARIANT):
            img = run / "samples" / f"{variant}_{k}.png"
            img.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(img)
            samples.append(RatingSample(str(img), variant, "image"))
        if variant != "S2I-N":
            wav = run / "samples" / f"{variant}_sound.wav"
            sf.write(wav, rng.uniform(-0.3, 0.3, 22050).astype(np.float32), 44100, subtype="PCM_16")
            samples.append(RatingSample(str(wav), variant.replace("S2I", "I2S"), "audio"))
    return samples


def test_page_is_blind_deterministic_and_keyed(tmp_path):
    samples = make_fake_run(tmp_path / "run")
    page, key_path = write_rating_page(tmp_path / "run", samples, seed=3)
    html = re.sub(r'"data:[^"]*"', '""', page.read_text())  # the inlined media aside
    assert len(re.findall(r'src=""', html)) == len(samples)
    for name in ["S2I", "I2S", "samples/", ".png", ".wav"]:
        assert name.lower() not in html.lower(), name
    cards = re.findall(r'<div class="item".*?</div></div>', html)
    assert len(cards) == len(samples) and not any("real" in c for c in cards)  # "real" appears only in the text
    assert "fixed scale" in html and "cannot be told from a real frame" in html
    key = json.loads(key_path.read_text())
    assert len(key["items"]) == len(samples) and key["items"][0]["source"].startswith("samples/")
    order = [i["variant"] for i in key["items"] if i["kind"] == "image"]
    assert order != sorted(order)  # shuffled
    first = (page.read_bytes(), key_path.read_bytes())
    write_rating_page(tmp_path / "run", list(reversed(samples)), seed=3)
    assert (page.read_bytes(), key_path.read_bytes()) == first
    write_rating_page(tmp_path / "other", samples, seed=4)
    assert json.loads((tmp_path / "other" / KEY_NAME).read_text())["page"] != key["page"]


def test_krippendorff_alpha_interval():
    assert krippendorff_alpha_interval([[1, 1], [3, 3], [5]]) == 1.0
    assert krippendorff_alpha_interval([[1, 2], [2, 1]]) == pytest.approx(-0.5)  # by hand: 1 - 1 / (2/3)
    assert krippendorff_alpha_interval([[1, 2], [4]]) is None


def _write_csv(path: Path, page: str, rater: str, scores: dict[str, int]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["page", "rater", "item", "score"])
        for item, score in scores.items():
            w.writerow([page, rater, item, score])
    return path


def test_ratings_command_joins_and_summarises_and_rejects_bad_csvs(tmp_path):
    run = tmp_path / "run"
    write_rating_page(run, make_fake_run(run))
    key = read_key(run)
    alice = {i["item"]: VARIANTS.get(i["variant"], 3) for i in key["items"]}
    bob = {item: max(1, s - 1) for item, s in alice.items()}
    files = [_write_csv(tmp_path / "a.csv", key["page"], "alice", alice),
             _write_csv(tmp_path / "b.csv", key["page"], "bob", bob)]
    result = CliRunner().invoke(bench, ["ratings", str(run), *map(str, files)])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "ratings.json").read_text())
    means = {(s["kind"], s["variant"]): s["mean"] for s in summary["scores"]}
    assert means[("image", "real")] == 4.5 and means[("image", "S2I-C")] == 3.5 and means[("image", "S2I-A")] == 1.5
    assert all(s["n_raters"] == 2 and s["low"] <= s["mean"] <= s["high"] for s in summary["scores"]
               if s["kind"] == "image")
    assert "Krippendorff's alpha (interval metric)" in result.output and "| image | real | 4.50" in result.output
    # Bad input: one line naming the file (and line) and the cause.
    bad = _write_csv(tmp_path / "bad.csv", key["page"], "carol", {"s99": 3})
    other = _write_csv(tmp_path / "other.csv", "0123456789abcdef", "dan", {key["items"][0]["item"]: 3})
    for path, cause in [(bad, "unknown item 's99'"), (other, "ratings of another rate.html"),
                        (files[0], "scored")]:
        result = CliRunner().invoke(bench, ["ratings", str(run), str(files[0]), str(path)] if path != files[0]
                                    else ["ratings", str(run), str(files[0]), str(files[0])])
        assert result.exit_code == 1 and cause in result.output and "Traceback" not in result.output, result.output


def test_a_scripted_rater_in_the_browser(tmp_path):
    run = tmp_path / "run"
    write_rating_page(run, make_fake_run(run))
    key = read_key(run)
    variant_of = {i["item"]: i["variant"] for i in key["items"]}
    with chromium() as browser:
        context = browser.new_context(accept_downloads=True)
        watched = WatchedPage(context)
        page = watched.page
        watched.goto((run / PAGE_NAME).as_uri())
        durations = watched.audio_durations()
        assert len(durations) == 3 and all(abs(d - 0.5) < 0.01 for d in durations.values())
        assert all(w > 0 for w in watched.visible_image_widths().values())
        items = page.eval_on_selector_all(".item", "els => els.map(e => e.dataset.item)")
        assert sorted(items) == sorted(variant_of)
        half = items[: len(items) // 2]
        for item in half:
            page.check(f'input[name="{item}"][value="{VARIANTS.get(variant_of[item], 3)}"]')
        # The scores are kept in the browser. Chromium commits localStorage to its storage service
        # asynchronously, so a reload milliseconds after the last click can still read the older
        # state (seen once in CI under load): reload until the commit shows, for at most 5 s.
        expected, deadline = f"{len(half)} of {len(items)} rated", time.monotonic() + 5
        while True:
            page.reload()
            page.wait_for_load_state("load")
            if page.inner_text("#n-rated") == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert page.inner_text("#n-rated") == expected
        for item in items[len(half):]:
            page.check(f'input[name="{item}"][value="{VARIANTS.get(variant_of[item], 3)}"]')
        page.fill("#rater", 'Ann "A" Lee')
        page.screenshot(path=str(tmp_path / "rate.png"), full_page=True)
        with page.expect_download() as download:
            page.click("#export")
        exported = Path(download.value.path()).read_text()
        assert watched.problems == []
        context.close()
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == len(items) and {r["rater"] for r in rows} == {'Ann "A" Lee'}
    (tmp_path / "ann.csv").write_text(exported)
    summary = summarize_ratings(key, read_ratings([tmp_path / "ann.csv"], key))
    means = {(s.kind, s.variant): s.mean for s in summary.scores}
    assert means == {(i["kind"], i["variant"]): VARIANTS.get(i["variant"], 3) for i in key["items"]}
    assert summary.alpha == {"audio": None, "image": None}  # one rater: no agreement to measure
