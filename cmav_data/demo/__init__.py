"""The demo URMP corpus: real scores (music21's corpus), rendered sound and drawn players, in URMP's layout.

Modules: ``plan`` (pieces and instruments, no rendering), ``scores`` (excerpts as timed notes),
``render`` (WAV, Notes, F0s, MIDI), ``players`` (sprites), ``video`` (frames and H.264),
``contact_sheet`` and ``corpus`` (the folder layout, index and demo.json).
"""

from cmav_data.demo.corpus import make_demo_urmp, render_piece
from cmav_data.demo.errors import DemoError
from cmav_data.demo.plan import DemoOptions, parse_seconds, parse_size, pieces_per_instrument, plan_corpus

__all__ = [
    "DemoError", "DemoOptions", "make_demo_urmp", "parse_seconds", "parse_size", "pieces_per_instrument",
    "plan_corpus", "render_piece",
]
