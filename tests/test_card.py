"""The published dataset card: typed features that `datasets` reads (Image without a cast), the
soundfile snippet, and provenance (a demo-corpus build says it is synthetic and how it was made)."""

from __future__ import annotations

import io
import json
import re

import pytest
import soundfile as sf

from cmav_data.recipes.build import RunFlags
from cmav_data.recipes.suburmp import SubUrmpOptions, build_suburmp
from cmav_data.shards import publish
from cmav_data.view import build_view
from test_view import make_view_dataset


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = make_view_dataset(tmp_path_factory.mktemp("card_built"), pairs_per_recording=3)
    out = tmp_path_factory.mktemp("card_hub")
    publish(root, out, progress=False)
    return out


def test_card_declares_every_column_typed(hub):
    card = (hub / "README.md").read_text()
    header = card.split("---")[1]
    names = re.findall(r"- name: (\w+)\n    dtype: (\w+)", header)
    assert ("image_bytes", "image") in names and ("audio_bytes", "binary") in names
    assert ("t_end", "float64") in names and ("silent", "bool") in names and len(names) == 21
    assert "soundfile.read(io.BytesIO(ds[0][\"audio_bytes\"]))" in card and "datasets.Audio()" in card


def test_datasets_reads_the_image_column_as_image_and_the_snippet_decodes_audio(hub, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="`pip install datasets` to check the card with it")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds = datasets.load_dataset(str(hub), split="train", cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["image_bytes"], datasets.Image)
    assert ds[0]["image_bytes"].size == (48, 108)  # a PIL image, no cast
    samples, rate = sf.read(io.BytesIO(ds[0]["audio_bytes"]))  # the card's snippet
    assert rate == 44100 and samples.shape == (22050, 2) and ds.num_rows == 9


def test_a_demo_build_is_published_as_synthetic_with_its_seed_and_sources(tiny_demo_urmp, tmp_path):
    build_suburmp(tiny_demo_urmp, tmp_path / "built", SubUrmpOptions(), run=RunFlags(progress=False))
    corpus = json.loads((tmp_path / "built/build.json").read_text())["source_corpus"]
    demo = json.loads((tiny_demo_urmp / "demo.json").read_text())
    assert corpus["synthetic"] is True and corpus["generator"] == "cmav-data make-demo-urmp"
    assert corpus["seed"] == demo["options"]["seed"] == 0
    publish(tmp_path / "built", tmp_path / "hub", progress=False)
    card = (tmp_path / "hub/README.md").read_text()
    assert "Synthetic" in card and "not cut from URMP" in card and "cut from the URMP dataset" not in card
    assert "`cmav-data make-demo-urmp` (seed 0)" in card and demo["soundfont"]["sha256"] in card
    assert all(p["music21"]["corpus_path"] in card for p in demo["pieces"])
    index = json.loads((tmp_path / "hub/index.json").read_text())
    assert index["build"]["source_corpus"]["synthetic"] is True
    # The viewer on this real build (real JPEG crops, 44.1 kHz stereo chunks) and on its shards.
    built_view = build_view(tmp_path / "built", progress=False)
    shards_view = build_view(tmp_path / "hub", tmp_path / "hub_view", progress=False)
    assert built_view.n_pairs == shards_view.n_pairs == json.loads((tmp_path / "built/build.json").read_text())["n_pairs"]
    assert (tmp_path / "built/view/index.html").is_file() and shards_view.n_pages == built_view.n_pages


def test_a_bad_demo_json_stops_the_build_naming_it(tiny_demo_urmp, tmp_path):
    import shutil

    from cmav_data.recipes.build import BuildError

    corpus = tmp_path / "urmp"
    shutil.copytree(tiny_demo_urmp, corpus)
    (corpus / "demo.json").write_text("{not json")
    with pytest.raises(BuildError, match=r"demo\.json: not a demo\.json written by make-demo-urmp"):
        build_suburmp(corpus, tmp_path / "built", SubUrmpOptions(), run=RunFlags(progress=False))
    assert not (tmp_path / "built/manifest.parquet").exists()
