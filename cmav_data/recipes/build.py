"""Machinery every dataset recipe shares: the output folder's state, resume, failures, assembly.

A build writes into OUT:
- media files, each written atomically (temporary name, then rename);
- ``.cmav-build/plan.json``: the options that change bytes and the planned work units; a resumed
  build must find the same plan;
- ``.cmav-build/units/<unit>.parquet``: the manifest rows of one finished unit (a recording for
  Sub-URMP), written after all of its media; a unit with this file is done and is skipped on resume;
- at the end ``manifest.parquet`` (all rows in plan order), ``build.json`` and, when units failed,
  ``failures.jsonl``.
Because rows are assembled in plan order from per-unit files, the manifest does not depend on the
order in which workers finished, nor on how many there were, nor on interruptions.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from cmav_data.atomic import sweep_temporaries, write_text
from cmav_data.manifest import write_table

STATE_DIR = ".cmav-build"


class BuildError(Exception):
    """A build that cannot start or go on; the message says what to do."""


@dataclass(frozen=True)
class UnitFailure:
    """A work unit that failed on bad input: which unit, which file, what is wrong."""

    unit: str
    path: str
    cause: str

    def __str__(self) -> str:
        return f"{self.unit}: {self.path}: {self.cause}"


class BuildDir:
    """The output folder of one build, with its resume state."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.state = self.root / STATE_DIR
        self.units = self.state / "units"

    def start(self, plan: Mapping[str, Any], resume: bool, overwrite: bool) -> None:
        """Check or record the plan. A different plan, or an unrequested reuse of OUT, is an error."""
        plan_path = self.state / "plan.json"
        plan_text = json.dumps(plan, indent=1, sort_keys=True)
        if self.root.exists() and any(self.root.iterdir()):
            if overwrite:
                shutil.rmtree(self.root)
            elif not resume:
                raise BuildError(f"{self.root} is not empty: pass --resume to finish an interrupted build "
                                 "or --overwrite to start again")
            elif not plan_path.is_file():
                raise BuildError(f"{self.root} holds no cmav build to resume (no {STATE_DIR}/plan.json)")
            elif plan_path.read_text() != plan_text:
                raise BuildError(f"{self.root} was built with other inputs or options; "
                                 "resume with the same ones or pass --overwrite")
        self.units.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(self.root)
        write_text(plan_path, plan_text)

    def unit_path(self, unit: str) -> Path:
        return self.units / f"{unit}.parquet"

    def is_done(self, unit: str) -> bool:
        return self.unit_path(unit).is_file()

    def assemble(self, units: Iterable[str], schema: pa.Schema, metadata: Mapping[bytes, bytes],
                 out_name: str = "manifest.parquet") -> pa.Table:
        """Concatenate the finished units' rows in the given (plan) order into the manifest."""
        tables = [pq.read_table(self.unit_path(u), schema=schema) for u in units if self.is_done(u)]
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        write_table(table, self.root / out_name, metadata)
        return table

    def write_failures(self, failures: list[UnitFailure]) -> Path | None:
        path = self.root / "failures.jsonl"
        if not failures:
            if path.exists():
                path.unlink()
            return None
        lines = [json.dumps({"unit": f.unit, "path": f.path, "cause": f.cause}) for f in failures]
        write_text(path, "\n".join(lines) + "\n")
        return path


def split_counts(table: pa.Table, splits: tuple[str, ...] = ("train", "validation")) -> dict[str, dict[str, int]]:
    """class_name -> split -> rows of a manifest (for build.json)."""
    classes = table.column("class_name").to_pylist()
    counts: dict[str, dict[str, int]] = {c: {s: 0 for s in splits} for c in sorted(set(classes))}
    for c, s in zip(classes, table.column("split").to_pylist()):
        counts[c][s] += 1
    return counts
