"""The ``cmav-data`` command: a click group whose commands are thin shims, one module per topic.

Each shim parses options and calls one library function; the library never imports click.
"""

from __future__ import annotations

import click

from cmav_data import __version__

EPILOG = """\b
Quick start (the embedded demo corpus, a few minutes on a laptop):
  cmav-data make-demo-urmp demo/urmp
  cmav-data inspect-urmp demo/urmp
"""


@click.group(epilog=EPILOG, context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cmav-data")
def main() -> None:
    """cmav-data: build, inspect and featurise Sub-URMP / INIS style audio-visual datasets."""


def _register() -> None:
    # Each topic module defines its commands and adds them to ``main``.
    from cmav_data.cli import demo, features, inis, shards, suburmp, urmp  # noqa: F401


_register()
