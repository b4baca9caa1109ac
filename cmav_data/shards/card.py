"""The dataset card (README.md) of a published dataset: YAML header for the Hugging Face Hub
(splits -> shard globs), counts per class and split, build options, sources' terms, citation.

The card is generated from the index and the manifest only, so it is as deterministic as the shards.
Licence facts are stated only as far as they are known: cmav's code is MIT; the media inherit the
terms of the recordings they were cut from, which cmav cannot relicense.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from cmav_data.shards.index import ShardIndex

CHEN_2017 = """@inproceedings{chen2017deep,
  title     = {Deep Cross-Modal Audio-Visual Generation},
  author    = {Chen, Lele and Srivastava, Sudhanshu and Duan, Zhiyao and Xu, Chenliang},
  booktitle = {Proceedings of the Thematic Workshops of ACM Multimedia 2017},
  pages     = {349--357},
  year      = {2017}
}"""

LI_2019_URMP = """@article{li2019urmp,
  title   = {Creating a Multitrack Classical Music Performance Dataset for Multimodal Music
             Analysis: Challenges, Insights, and Applications},
  author  = {Li, Bochen and Liu, Xinzhao and Dinesh, Karthik and Duan, Zhiyao and Sharma, Gaurav},
  journal = {IEEE Transactions on Multimedia},
  volume  = {21}, number = {2}, pages = {522--535},
  year    = {2019}
}"""


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


def dataset_card(index: ShardIndex, rows: pa.Table) -> str:
    facts = FACTS.get(index.kind, GENERIC)
    splits = sorted(index.splits())
    yaml = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in splits:
        yaml += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    yaml += ["license: other", f"pretty_name: {facts.title}", "---", ""]

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
        "or `datasets.load_dataset('parquet', data_dir=DIR + '/data')`; check with "
        "`cmav-data verify DIR`.",
        "",
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
