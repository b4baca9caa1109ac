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

A build holds OUT's write lock (``cmav_data.locking``) from before the sweep of temporaries to the
end, and never writes into (or deletes) one of its inputs: see ``guarded_build``.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from cmav_data.atomic import sweep_temporaries, write_text
from cmav_data.locking import LOCK_NAME, output_lock
from cmav_data.manifest import SPLITS, write_table
from cmav_data.versions import package_versions, pyav_ffmpeg_version

STATE_DIR = ".cmav-build"
BUILD_RECORD = "build.json"
# What build.json records under "versions", in this order; "ffmpeg" is PyAV's, which decodes the videos.
BUILD_PACKAGES = ("cmav", "python", "numpy", "pyarrow", "av", "ffmpeg", "pillow", "soundfile", "libsndfile", "soxr",
                  "simplejpeg")


class BuildError(Exception):
    """A build that cannot start or go on; the message says what to do."""


@dataclass(frozen=True)
class RunFlags:
    """How a build runs, apart from what it builds: none of these is part of the plan or the output's bytes."""

    resume: bool = False  # finish an interrupted build in OUT (same inputs and options)
    overwrite: bool = False  # delete the cmav build in OUT first (``BuildDir.start``)
    fault_tolerant: bool = False  # build what can be built; failed units go to failures.jsonl
    progress: bool = True  # progress bars on stderr
    workers: int = 1  # units the executor runs at once (build-suburmp plans FFmpeg's threads by it)


@dataclass(frozen=True)
class UnitFailure:
    """A work unit that failed on bad input: which unit, which file, what is wrong."""

    unit: str
    path: str
    cause: str

    def __str__(self) -> str:
        return f"{self.unit}: {self.path}: {self.cause}"


def check_out_dir(out: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuse an OUT that is, holds or lies inside one of ``inputs`` (name -> path, by real path):
    writing there would mix the output into the input, and --overwrite would delete the input."""
    out_real = Path(os.path.realpath(out))
    for name, path in inputs.items():
        if path is None:
            continue
        real = Path(os.path.realpath(path))
        if out_real == real:
            relation = "is"
        elif real in out_real.parents:
            relation = "lies inside"
        elif out_real in real.parents:
            relation = "holds"
        else:
            continue
        raise BuildError(f"{out}: OUT {relation} the input {name} ({path}); choose an OUT outside the inputs")


F = TypeVar("F", bound=Callable[..., Any])


def guarded_build(command: str, out: str, inputs: Mapping[str, str]) -> Callable[[F], F]:
    """Decorate a recipe's build function: check its ``out`` parameter against its ``inputs``
    parameters (parameter -> name for messages; ``check_out_dir``), then hold OUT's write lock while
    it runs, so that a second build into OUT stops at once (``OutputLocked``) instead of sweeping
    this one's temporaries."""

    def decorate(build: F) -> F:
        signature = inspect.signature(build)

        @functools.wraps(build)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            out_dir = bound.arguments[out]
            check_out_dir(out_dir, {label: bound.arguments.get(param) for param, label in inputs.items()})
            if os.path.islink(out_dir) and not os.path.isdir(out_dir):
                raise BuildError(f"{out_dir}: OUT is a symbolic link to nothing")
            if os.path.islink(out_dir) and bound.arguments.get("run", RunFlags()).overwrite:
                raise BuildError(f"{out_dir}: OUT is a symbolic link; --overwrite never deletes through one: "
                                 "pass the folder it points to")
            with output_lock(out_dir, command):
                return build(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def _is_cmav_build(root: Path) -> bool:
    if (root / STATE_DIR / "plan.json").is_file():
        return True
    try:
        record = json.loads((root / BUILD_RECORD).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("kind") in ("suburmp", "inis") and "schema_version" in record


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
        entries = [p for p in self.root.iterdir() if p.name != LOCK_NAME] if self.root.exists() else []
        if entries:
            if overwrite:
                if not _is_cmav_build(self.root):
                    raise BuildError(f"{self.root} is not empty and holds no cmav build (no {BUILD_RECORD} or "
                                     f"{STATE_DIR}/plan.json): --overwrite deletes only a build; empty it yourself")
                _remove_entries(entries)
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


def _remove_entries(entries: list[Path]) -> None:
    # The entries of OUT, not OUT itself: OUT holds our lock file, and a link inside is removed, never followed.
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def build_versions() -> dict[str, str | None]:
    """The versions a build records in build.json (``BUILD_PACKAGES``)."""
    return package_versions(BUILD_PACKAGES, ffmpeg=pyav_ffmpeg_version)


def split_counts(table: pa.Table) -> dict[str, dict[str, int]]:
    """class_name -> split -> rows of a manifest (for build.json)."""
    classes = table.column("class_name").to_pylist()
    counts: dict[str, dict[str, int]] = {c: {s: 0 for s in SPLITS} for c in sorted(set(classes))}
    for c, s in zip(classes, table.column("split").to_pylist()):
        counts[c][s] += 1
    return counts
