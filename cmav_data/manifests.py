"""Access to the committed reference tables in the repository's ``manifests/`` folder.

The tables are data kept apart from code (as mirdata keeps its indexes): the package reads them,
tests check them. They live beside the package in the source tree (cmav is installed editable).
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

MANIFESTS_DIR = Path(__file__).resolve().parent.parent / "manifests"


@lru_cache(maxsize=None)
def read_table(name: str) -> tuple[dict[str, str], ...]:
    """Rows of ``manifests/<name>`` as dicts of strings (cached: the tables are read-only)."""
    path = MANIFESTS_DIR / name
    with open(path, newline="", encoding="utf-8") as f:
        return tuple(csv.DictReader(f))
