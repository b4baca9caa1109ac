"""`cmav-data` commands: shards (thin shims over the library)."""

from __future__ import annotations

import click

from cmav_data.cli import main
