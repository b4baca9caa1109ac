"""The dataset card (README.md) of a published dataset: YAML header for the Hugging Face Hub
(splits -> shard globs, and the typed features: ``image_bytes`` as an ``image``, so ``datasets``
reads it as a PIL image without a cast; ``audio_bytes`` as ``binary``, decoded with soundfile as
the card shows), counts per class and split, provenance, build options, sources' terms, citation.

The card is generated from the index and the manifest only, so it is as deterministic as the shards.
Licence facts are stated only as far as they are known: cmav's code is MIT; the media inherit the
terms of the recordings they were cut from, which cmav cannot relicense.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from cmav_data.corpora.urmp import BIBTEX as URMP_BIBTEX
from cmav_data.manifest import EMBEDDED_SCHEMA
from cmav_data.recipes.suburmp import BIBTEX as SUBURMP_BIBTEX
from cmav_data.shards.index import ShardIndex

# Arrow type -> the dtype name of a Hugging Face ``Value`` feature.
_HF_DTYPES = {pa.string(): "string", pa.int32(): "int32", pa.int64(): "int64", pa.float32(): "float32",
              pa.float64(): "float64", pa.bool_(): "bool", pa.binary(): "binary"}
IMAGE_COLUMN = "image_bytes"  # declared as an Image feature (JPEG bytes)

# The citations are dataset facts kept beside their loaders (as mirdata keeps BIBTEX).
CHEN_2017 = SUBURMP_BIBTEX
LI_2019_URMP = URMP_BIBTEX


@dataclass(frozen=True)
class SourceFacts:
    title: str
    sources: str
    terms: str
    citations: tuple[str, ...]


_DERIVED_TERMS = (
    "cmav's code is MIT-licensed; the images and sounds here are derived from the source "
    "recordings and remain under the source's terms of use. Read them before using or "
    "redistributing this copy."
)

FACTS = {
    "suburmp": SourceFacts(
        title="Sub-URMP (rebuilt with cmav)",
        sources="Image/sound pairs cut from the URMP dataset (University of Rochester Multi-Modal "
        "Music Performance, Li et al.) as described by Chen et al. 2017 (Sub-URMP).",
        terms=_DERIVED_TERMS,
        citations=(CHEN_2017, LI_2019_URMP),
    ),
    "inis": SourceFacts(
        title="INIS (rebuilt with cmav)",
        sources="Instrument image/sound pairs as described by Chen et al. 2017 (INIS).",
        terms=_DERIVED_TERMS,
        citations=(CHEN_2017,),
    ),
}
GENERIC = SourceFacts(
    title="cmav image/sound pair dataset",
    sources="Built with cmav; see the build options below for its source corpus.",
    terms=_DERIVED_TERMS,
    citations=(CHEN_2017,),
)


def _synthetic_facts(kind: str, corpus: dict) -> SourceFacts:
    """The facts of a dataset built from the demo corpus: synthetic, and how it was made."""
    scores = ", ".join(corpus.get("scores", [])) or "not recorded"
    soundfont = corpus.get("soundfont", {})
    name = "Sub-URMP" if kind == "suburmp" else kind
    return SourceFacts(
        title=f"{name}-style demo (synthetic, made with cmav)",
        sources=(f"**Synthetic.** These pairs were not cut from URMP: they come from a demo corpus in URMP's "
                 f"layout made by `{corpus.get('generator', 'cmav-data make-demo-urmp')}` (seed "
                 f"{corpus.get('seed')}), from scores of music21's corpus ({scores}) rendered with the General "
                 f"MIDI soundfont `{soundfont.get('file', '?')}` (sha256 {soundfont.get('sha256', '?')}), with "
                 f"players drawn by cmav; then built into {name} pairs by cmav. Generation options: "
                 f"`{json.dumps(corpus.get('options', {}), sort_keys=True)}`; the corpus's demo.json sha256: "
                 f"{corpus.get('demo_json_sha256', '?')}. Use it to try tools, not as data about real performances."),
        terms=("cmav's code is MIT-licensed. The scores come from music21's corpus and the sounds are rendered "
               "with a soundfont: both keep their own terms (see music21's and the soundfont's licences)."),
        citations=(CHEN_2017,),
    )


def features_yaml() -> list[str]:
    """The ``dataset_info: features:`` lines of the card's YAML header (every shard column, typed)."""
    lines = ["dataset_info:", "  features:"]
    for f in EMBEDDED_SCHEMA:
        lines += [f"  - name: {f.name}", f"    dtype: {'image' if f.name == IMAGE_COLUMN else _HF_DTYPES[f.type]}"]
    return lines


LOADING = """\
`image_bytes` is declared an `Image` in the card's header, so `datasets` gives a PIL image; the sound is
a WAV file's bytes, decoded with soundfile:

```python
import io, datasets, soundfile
ds = datasets.load_dataset("DIR", split="train")   # DIR: this folder (or its Hub name)
samples, rate = soundfile.read(io.BytesIO(ds[0]["audio_bytes"]))
```

With a working torchcodec (which `datasets`' Audio feature needs), `ds.cast_column("audio_bytes",
datasets.Audio())` decodes it instead (not checked by cmav: torchcodec does not load beside its CPU torch).
"""


def dataset_card(index: ShardIndex, rows: pa.Table) -> str:
    corpus = index.build.get("source_corpus", {})
    facts = _synthetic_facts(index.kind, corpus) if corpus.get("synthetic") else FACTS.get(index.kind, GENERIC)
    splits = sorted(index.splits())
    yaml = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in splits:
        yaml += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    yaml += [*features_yaml(), "license: other", f"pretty_name: {facts.title}", "---", ""]

    counts = rows.group_by(["class_name", "split"]).aggregate([("id", "count")])
    n = {(c, s): k for c, s, k in zip(*(counts.column(x).to_pylist() for x in ("class_name", "split", "id_count")))}
    classes = sorted({c for c, _ in n})
    table = ["| class | " + " | ".join(splits) + " | total |", "|---" * (len(splits) + 2) + "|"]
    for c in classes:
        per = [n.get((c, s), 0) for s in splits]
        table.append(f"| {c} | " + " | ".join(map(str, per)) + f" | {sum(per)} |")
    per = [sum(n.get((c, s), 0) for c in classes) for s in splits]
    table.append("| **total** | " + " | ".join(map(str, per)) + f" | {sum(per)} |")

    shard_counts = ", ".join(f"{s}: {v['shards']}" for s, v in sorted(index.splits().items()))
    body = [
        f"# {facts.title}",
        "",
        facts.sources,
        "",
        "## Files",
        "",
        f"Parquet shards under `data/` ({shard_counts}); one row per image/sound pair with the JPEG "
        "in `image_bytes` and the WAV in `audio_bytes`. `index.json` lists every file's size and "
        "sha256. Load with `cmav_data.shards.load_pairs(DIR)`, `pandas.read_parquet(DIR + '/data')` "
        "or `datasets.load_dataset(DIR)` (below); check with "
        "`cmav-data verify DIR`.",
        "",
        "## Loading with `datasets`",
        "",
        LOADING,
        "## Pairs per class and split",
        "",
        *table,
        "",
        "## Build",
        "",
        f"Kind `{index.kind}`, manifest schema version {index.schema_version}.",
        "",
        "```json",
        json.dumps({"options": index.options, "versions": index.build.get("versions", {}),
                    "published_with": index.build.get("published_with", {})}, sort_keys=True, indent=2),
        "```",
        "",
        "## Licence and terms",
        "",
        facts.terms,
        "",
        "## Citation",
        "",
        "```bibtex",
        "\n\n".join(facts.citations),
        "```",
        "",
    ]
    return "\n".join(yaml + body)
