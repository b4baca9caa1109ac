"""The committed reference tables: the repository's ``manifests/`` folder, installed as package data.

The tables are data kept apart from code (as mirdata keeps its indexes): the package reads them,
tests check them. They are committed once, in ``manifests/``, which the build installs as the
package ``cmav_data.reference`` (``package-dir`` in pyproject.toml), so a wheel carries them and an
editable install reads the source folder itself. Every reader goes through ``reference_path``.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources
from pathlib import Path

REFERENCE_PACKAGE = "cmav_data.reference"


def reference_path(name: str) -> Path:
    """The installed file of the reference table ``name`` (``manifests/<name>`` in the repository).

    A file-system path: pip installs a wheel as files, never zipped.
    """
    return Path(str(resources.files(REFERENCE_PACKAGE).joinpath(name)))


@lru_cache(maxsize=None)
def read_table(name: str) -> tuple[dict[str, str], ...]:
    """Rows of the CSV reference table ``name`` as dicts of strings (cached: the tables are read-only)."""
    with open(reference_path(name), newline="", encoding="utf-8") as f:
        return tuple(csv.DictReader(f))
