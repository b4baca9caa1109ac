"""The ``cmav-data`` command: a click group whose commands are thin shims, one module per topic.

Each shim parses options and calls one library function; the library never imports click.
Other installed packages add commands through the ``cmav_data.commands`` entry-point group (name =
command name, value = a click command), loaded only when listed or run: so ``cmav_models`` plugs in
``compare-features`` while ``cmav_data`` never imports ``cmav_models``.
"""

from __future__ import annotations

from importlib import metadata

import click

from cmav_data import __version__

EPILOG = """\b
Quick start (the embedded demo corpus, a few minutes on a laptop):
  cmav-data make-demo-urmp demo/urmp
  cmav-data inspect-urmp demo/urmp
"""


PLUGIN_GROUP = "cmav_data.commands"


class PluginGroup(click.Group):
    """A click group that also offers the commands registered under ``PLUGIN_GROUP``, imported lazily."""

    def _plugins(self) -> dict[str, metadata.EntryPoint]:
        return {ep.name: ep for ep in metadata.entry_points(group=PLUGIN_GROUP) if ep.name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._plugins()])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in self._plugins():
            command = self._plugins()[name].load()
        return command


@click.group(cls=PluginGroup, epilog=EPILOG, context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cmav-data")
def main() -> None:
    """cmav-data: build, inspect and featurise Sub-URMP / INIS style audio-visual datasets."""


def _register() -> None:
    # Each topic module defines its commands and adds them to ``main``.
    from cmav_data.cli import demo, features, inis, shards, stats, suburmp, urmp, view  # noqa: F401


_register()
