"""Each benchmark owns one section of benchmarks/RESULTS.md, delimited by HTML comments."""

from __future__ import annotations

import platform
import re
from pathlib import Path

from cmav_data.atomic import write_text

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def update_section(name: str, command: str, body: str) -> None:
    """Replace (or append) the section ``name`` with the command that made it and its numbers."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = f"{begin}\n## {name}\n\n`{command}` ({machine()})\n\n```\n{body.rstrip()}\n```\n{end}"
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: section, old) if pattern.search(old) else old.rstrip() + "\n\n" + section + "\n"
    write_text(RESULTS, new)
