"""cmav-data view without a browser: layout, paging, reuse, determinism for any -j, shards, bad input.

The browser checks (images decode, audio plays, filters, paging by clicking) are in test_view_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from cmav_data.checksum import sha256_file
from cmav_data.cli import main
from cmav_data.manifest import read_manifest, read_metadata, table_metadata, write_table
from cmav_data.parallel import executor_for
from cmav_data.shards import publish
from cmav_data.view import ViewError, build_view
from test_bench_data import make_tiny_dataset

PAIRS = 7  # per recording: 3 pages of 3, the last with one pair


def make_view_dataset(root: Path, pairs_per_recording: int = PAIRS) -> Path:
    """test_bench_data's tiny built dataset (0.5 s WAVs), with the media sha256s that publish checks."""
    make_tiny_dataset(root, pairs_per_recording=pairs_per_recording)
    table = read_manifest(root / "manifest.parquet")
    for column in ("image", "audio"):
        shas = [sha256_file(root / p) for p in table.column(f"{column}_path").to_pylist()]
        table = table.set_column(table.schema.get_field_index(f"{column}_sha256"), f"{column}_sha256",
                                 pa.array(shas, pa.string()))
    meta = read_metadata(root / "manifest.parquet")
    write_table(table, root / "manifest.parquet", table_metadata(meta["kind"], meta["options"]))
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_view_dataset(tmp_path_factory.mktemp("view_tiny"))


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_site_layout_pages_and_counts(tiny, tmp_path):
    result = build_view(tiny, tmp_path / "site", page_size=3, progress=False)
    assert (result.n_pairs, result.n_recordings, result.n_pages, result.n_computed) == (42, 6, 18, 42)
    index = (tmp_path / "site/index.html").read_text()
    # Every (class, split) row with its counts; every recording linked to its first page.
    for cls in ("cello", "flute", "trumpet"):
        for split in ("train", "validation"):
            assert re.search(rf'<td class="l">{cls}</td><td class="l">{split}</td><td>{PAIRS}</td><td>1</td><td>0.0%</td>', index)
        assert f'href="rec/{cls}01-001.html"' in index
    page3 = (tmp_path / "site/rec/cello01-003.html").read_text()
    assert page3.count('class="pair') == 1 and "cello01_1100" in page3 and 'id="next"' not in page3
    page1 = (tmp_path / "site/rec/cello01-001.html").read_text()
    assert page1.count('class="pair') == 3 and 'href="cello01-002.html"' in page1
    # Self-contained: no absolute URL, every referenced file exists in the site.
    for page in (tmp_path / "site").rglob("*.html"):
        text = page.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), page
        for ref in re.findall(r'(?:src|href)="(?!data:)([^"#]+)"', text):
            assert (page.parent / ref).resolve().is_file(), (page, ref)


def test_rerun_reuses_pictures_and_any_jobs_give_the_same_bytes(tiny, tmp_path):
    build_view(tiny, tmp_path / "serial", page_size=5, progress=False)
    with executor_for(2) as pool:
        parallel = build_view(tiny, tmp_path / "parallel", pool, page_size=5, progress=False)
    assert _tree(tmp_path / "serial") == _tree(tmp_path / "parallel")
    again = build_view(tiny, tmp_path / "serial", page_size=200, progress=False)
    assert parallel.n_computed == 42 and again.n_computed == 0
    # The pages of the earlier paging are gone; one page per recording now.
    assert sorted(p.name for p in (tmp_path / "serial/rec").iterdir()) == [
        f"{c}0{k}-001.html" for c in ("cello", "flute", "trumpet") for k in (1, 2)]


def test_shards_give_the_same_pages_as_the_built_dataset(tiny, tmp_path):
    publish(tiny, tmp_path / "hub", shard_size=200_000, progress=False)
    build_view(tiny, tmp_path / "from_built", page_size=4, progress=False)
    build_view(tmp_path / "hub", tmp_path / "from_shards", page_size=4, progress=False)
    built, shards = _tree(tmp_path / "from_built"), _tree(tmp_path / "from_shards")
    assert sorted(built) == sorted(shards)
    # Same media and pages; only the title (the dataset's folder name) and the overview's source note differ.
    name = {"from_built": tiny.name.encode(), "from_shards": b"hub"}
    for key in built:
        if key != "index.html":
            assert built[key].replace(name["from_built"], b"D") == shards[key].replace(name["from_shards"], b"D"), key
    assert b"Read from Parquet shards" in shards["index.html"]


def test_bad_input_is_one_clear_line(tiny, tmp_path):
    result = CliRunner().invoke(main, ["view", str(tmp_path)])
    assert result.exit_code == 1 and "manifest.parquet" in result.output and "Traceback" not in result.output
    broken = make_tiny_dataset(tmp_path / "broken", pairs_per_recording=2)
    wav = next((broken / "chunk").rglob("*.wav"))
    wav.write_bytes(b"RIFF not a wav")
    result = CliRunner().invoke(main, ["view", str(broken), "--quiet"])
    assert result.exit_code == 1 and str(wav) in result.output and "undecodable sound" in result.output
    with pytest.raises(ViewError, match="page size"):
        build_view(tiny, tmp_path / "x", page_size=0)
