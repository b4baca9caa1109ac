"""The one exception family of the demo corpus (the CLI turns it into a one-line error)."""


class DemoError(ValueError):
    """Bad options, an unusable output folder, a score or an encoder failure; the message names it."""
