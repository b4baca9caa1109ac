"""Where each player sits in an assembled URMP-style video.

URMP's videos put the players side by side, left to right in part order. By default player k
(1-based) of n owns the k-th of n equal-width columns over the full height; the demo corpus draws
players exactly there and build-suburmp crops exactly there, so both import this one function.
"""

from __future__ import annotations


def player_box(width: int, height: int, n_players: int, part: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) in pixels, right/bottom exclusive, for 1-based ``part``."""
    if not 1 <= part <= n_players:
        raise ValueError(f"part {part} outside 1..{n_players}")
    left = (part - 1) * width // n_players
    right = part * width // n_players
    return left, 0, right, height
