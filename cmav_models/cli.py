"""The ``cmav-bench`` command (thin shims over cmav_models)."""

from __future__ import annotations

import click


@click.group(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
def main() -> None:
    """cmav-bench: train and score the reference cross-modal models."""
