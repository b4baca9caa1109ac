"""Drawn players: one sprite per player (instrument, look, column size) and quantised pose.

The instrument's drawing (its shape) is the only cue to the class. Everything else is a ``Look``
seeded per piece and player, never per instrument: the room (wall, floor, chair) of the piece, and
the player's clothes, skin, hair, the light on the player (exposure and white balance) and the tone
of the instrument's material (one range of woods shared by strings, oboe, clarinet and bassoon; one
range of metals, silver to gold lacquer, shared by flute, saxophone and brass). So a classifier of
mean colour is at chance, as on URMP, where backdrops vary by recording (``benchmarks/bench_colour_leak.py``).
The pose follows what is played, which makes sound-to-image and pose generation learnable:

- ``pitch`` (0..PITCH_LEVELS-1, position of the note in the instrument's range): left hand along
  the neck for strings, trombone slide extension, closed keys/valves for woodwinds and brass;
- ``loudness`` (1..LOUDNESS_LEVELS): chest width (breath/body) and the sound waves around the
  instrument;
- ``stroke`` (0..STROKE_LEVELS-1, progress through the note): bow position for strings, the phase
  of the sound waves for winds;
- ``None``: at rest (instrument lowered, bow down), drawn identically whenever the player is silent.

Sprites are drawn at twice the size and averaged down (anti-aliasing), once per pose a player uses.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from cmav_data.instruments import instrument

PITCH_LEVELS = 6
LOUDNESS_LEVELS = 4
STROKE_LEVELS = 4
SUPERSAMPLE = 2

RGB = tuple[int, int, int]
KEY_OPEN = (210, 210, 215)
KEY_CLOSED = (150, 30, 30)
# Instruments drawn in metal; all others are wooden. Both materials span several classes.
METAL = frozenset({"fl", "sax", "tpt", "hn", "tbn", "tba"})
WOOD_RANGE = ((52, 32, 24), (224, 152, 74))  # grenadilla-dark to maple-light
METAL_RANGE = ((200, 206, 218), (238, 194, 84))  # silver-plated to gold lacquer
SKIN_RANGE = ((96, 62, 44), (242, 204, 172))
HAIR_RANGE = ((24, 20, 18), (196, 160, 110))
LOOK_STREAM = 0x100C  # keeps the looks' random stream apart from the excerpt's (same piece seed)


@dataclass(frozen=True)
class Pose:
    pitch: int
    loudness: int
    stroke: int


@dataclass(frozen=True)
class Look:
    """Everything in a player's picture but the instrument's shape and the pose."""

    wall: RGB  # the room: one per piece
    floor: RGB
    chair: RGB
    suit: RGB  # the player
    shirt: RGB
    skin: RGB
    hair: RGB
    wood: RGB  # the instrument's material, by whichever the instrument is made of
    metal: RGB
    light: tuple[float, float, float]  # gain per RGB channel: this player's exposure and white balance

    def material(self, code: str) -> RGB:
        return self.metal if code in METAL else self.wood


def _hls(rng: np.random.Generator, light: tuple[float, float], sat: tuple[float, float]) -> RGB:
    rgb = colorsys.hls_to_rgb(rng.uniform(0, 1), rng.uniform(*light), rng.uniform(*sat))
    return tuple(round(255 * c) for c in rgb)


def _between(rng: np.random.Generator, span: tuple[RGB, RGB]) -> RGB:
    t = rng.uniform(0, 1)
    return tuple(round(a + t * (b - a)) for a, b in zip(*span))


def player_look(seed: int, piece: int, part: int) -> Look:
    """The look of player ``part`` (1-based) of piece number ``piece``, from the piece's ``seed``.

    The instrument is deliberately not an argument: nothing here can depend on it.
    """
    room = np.random.default_rng([seed, piece, LOOK_STREAM])
    wall, floor = _hls(room, (0.45, 0.88), (0.0, 0.55)), _hls(room, (0.2, 0.6), (0.0, 0.45))
    chair = _hls(room, (0.15, 0.45), (0.1, 0.5))
    rng = np.random.default_rng([seed, piece, LOOK_STREAM, part])
    brightness, warmth = rng.uniform(0.78, 1.12), rng.uniform(-0.1, 0.1)
    return Look(
        wall=wall, floor=floor, chair=chair,
        suit=_hls(rng, (0.08, 0.5), (0.0, 0.6)), shirt=_hls(rng, (0.72, 0.97), (0.0, 0.5)),
        skin=_between(rng, SKIN_RANGE), hair=_between(rng, HAIR_RANGE),
        wood=_between(rng, WOOD_RANGE), metal=_between(rng, METAL_RANGE),
        light=(brightness * (1 + warmth), brightness, brightness * (1 - warmth)),
    )


class _Canvas:
    """Drawing in units of the column (u = 1/100 of a reference size), y growing downwards."""

    def __init__(self, width: int, height: int, look: Look):
        self.look = look
        self.w, self.h = width * SUPERSAMPLE, height * SUPERSAMPLE
        self.image = Image.new("RGB", (self.w, self.h), look.wall)
        self.draw = ImageDraw.Draw(self.image)
        self.u = min(self.w / 90, self.h / 130)
        self.cx = self.w / 2
        self.floor_y = self.h * 0.88
        self.draw.rectangle([0, self.floor_y, self.w, self.h], fill=look.floor)

    def p(self, x: float, y: float) -> tuple[float, float]:
        """Column point from units relative to the head (x right of it, y below it); feet on the floor."""
        return self.cx + x * self.u, self.floor_y - 88 * self.u + y * self.u

    def line(self, a, b, width: float, fill) -> None:
        self.draw.line([self.p(*a), self.p(*b)], fill=fill, width=max(1, round(width * self.u)))

    def disc(self, c, r: float, fill, outline=None) -> None:
        x, y = self.p(*c)
        r *= self.u
        self.draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=outline)

    def ellipse(self, c, rx: float, ry: float, fill) -> None:
        x, y = self.p(*c)
        self.draw.ellipse([x - rx * self.u, y - ry * self.u, x + rx * self.u, y + ry * self.u], fill=fill)

    def body(self, centre, length: float, width: float, angle: float, fill) -> None:
        """A string instrument's body (two bouts and a waist) along ``angle`` (radians, 0 = up)."""
        ux, uy = math.sin(angle), -math.cos(angle)  # along the axis
        vx, vy = -uy, ux  # across
        pts = []
        for side in (1, -1):
            for k in range(25):
                t = -1 + 2 * k / 24 if side == 1 else 1 - 2 * k / 24
                half = width / 2 * math.sqrt(max(0.0, 1 - t * t)) ** 0.6 * (1 - 0.3 * math.exp(-((t + 0.05) / 0.2) ** 2))
                half *= 1 - 0.1 * t  # lower bout wider than the upper one
                a, b = t * length / 2, side * half
                pts.append(self.p(centre[0] + a * ux + b * vx, centre[1] + a * uy + b * vy))
        self.draw.polygon(pts, fill=fill)

    def waves(self, c, loudness: int, stroke: int, direction: float, colour) -> None:
        """Sound waves: ``loudness`` arcs around ``c``, pushed outwards with the stroke phase."""
        x, y = self.p(*c)
        deg = math.degrees(direction) - 90
        for k in range(loudness):
            r = (6 + 6 * k + 1.5 * stroke) * self.u
            self.draw.arc([x - r, y - r, x + r, y + r], deg - 30, deg + 30, fill=colour,
                          width=max(1, round(1.2 * self.u)))


def _figure(cv: _Canvas, pose: Optional[Pose]) -> None:
    chest = 0 if pose is None else 1.2 * pose.loudness
    cv.draw.rectangle([*cv.p(-16, 46), *cv.p(16, 50)], fill=cv.look.chair)
    cv.line((-13, 50), (-13, 85), 2.5, cv.look.chair)
    cv.line((13, 50), (13, 85), 2.5, cv.look.chair)
    for side in (-1, 1):  # legs: thighs forward (seen from the front: short), shins down
        cv.line((6 * side, 46), (8 * side, 84), 7, cv.look.suit)
        cv.ellipse((9 * side, 85), 5, 2, (20, 20, 20))
    w = 13 + chest
    cv.draw.polygon([cv.p(-w, 10), cv.p(w, 10), cv.p(11, 48), cv.p(-11, 48)], fill=cv.look.suit)
    cv.draw.polygon([cv.p(-4, 10), cv.p(4, 10), cv.p(0, 24)], fill=cv.look.shirt)
    cv.disc((0, 0), 8.5 + 0.3 * chest, cv.look.skin)
    cv.draw.chord([*cv.p(-9, -9), *cv.p(9, 7)], 180, 360, fill=cv.look.hair)
    cv.disc((-3, 0), 0.9, (30, 30, 30))
    cv.disc((3, 0), 0.9, (30, 30, 30))


def _keys(cv: _Canvas, a, b, count: int, closed: int) -> None:
    for k in range(count):
        t = (k + 1) / (count + 1)
        c = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
        cv.disc(c, 1.3, KEY_CLOSED if k < closed else KEY_OPEN)


def _closed_keys(pose: Optional[Pose], count: int) -> int:
    """Low notes close more keys/valves (a longer tube); at rest none are pressed."""
    if pose is None:
        return 0
    return round((PITCH_LEVELS - 1 - pose.pitch) / (PITCH_LEVELS - 1) * count)


def _strings(cv: _Canvas, code: str, pose: Optional[Pose]) -> None:
    colour = cv.look.material(code)
    dark = tuple(c // 3 for c in colour)
    small = code in ("vn", "va")
    if small:
        scale = 1.0 if code == "vn" else 1.15
        length, width = 26 * scale, 15 * scale
        angle = math.radians(-70) if pose is not None else math.radians(170)
        centre = (8, 20) if pose is not None else (22, 42)
    else:
        scale = 1.0 if code == "vc" else 1.35
        length, width = 40 * scale, 24 * scale
        angle = 0.0
        centre = (0, 60 - 12 * (scale - 1)) if pose is not None else (14, 60 - 12 * (scale - 1))
    ux, uy = math.sin(angle), -math.cos(angle)
    top = (centre[0] + ux * length / 2, centre[1] + uy * length / 2)
    scroll = (top[0] + ux * length * 0.75, top[1] + uy * length * 0.75)
    if not small:
        cv.line((centre[0], centre[1] + length / 2), (centre[0], 86), 1.2, (60, 60, 60))  # endpin
    cv.body(centre, length, width, angle, colour)
    cv.line(top, scroll, 3.2 * scale, dark)
    cv.disc(scroll, 2.2 * scale, dark)
    bridge = (centre[0] + ux * length * 0.08, centre[1] + uy * length * 0.08)
    cv.line((centre[0] - ux * length * 0.45, centre[1] - uy * length * 0.45), top, 0.5, (230, 220, 200))
    if pose is None:
        cv.line((-16, 14), (-20, 44), 4, cv.look.suit)  # bow arm hanging, bow down
        cv.line((-20, 44), (-18, 86), 0.9, (120, 90, 60))
        cv.line((14, 14), (top[0], top[1]), 4, cv.look.suit)
        return
    # Left hand along the neck: high notes near the body, low notes near the scroll.
    t = 0.9 - 0.8 * pose.pitch / (PITCH_LEVELS - 1)
    hand = (top[0] + (scroll[0] - top[0]) * t, top[1] + (scroll[1] - top[1]) * t)
    cv.line((14, 14), hand, 4, cv.look.suit)
    cv.disc(hand, 2.4, cv.look.skin)
    # Bow across the strings at the bridge, travelling along its length with the stroke.
    bow_len = 55 * scale if not small else 45
    bx, by = (-uy, ux) if small else (1.0, 0.0)
    offset = (pose.stroke / (STROKE_LEVELS - 1) - 0.5) * 0.7 * bow_len
    frog = (bridge[0] + bx * (bow_len / 2 - offset), bridge[1] + by * (bow_len / 2 - offset))
    tip = (frog[0] - bx * bow_len, frog[1] - by * bow_len)
    cv.line(frog, tip, 0.9, (120, 90, 60))
    cv.line((-14, 14), frog, 4, cv.look.suit)
    cv.disc(frog, 2.4, cv.look.skin)
    cv.waves(centre, pose.loudness, pose.stroke, angle + math.pi / 2, dark)


def _woodwind(cv: _Canvas, code: str, pose: Optional[Pose]) -> None:
    colour = cv.look.material(code)
    mouth = (0, 4)
    drop = (0, 0) if pose is not None else (6, 30)  # lowered from the mouth at rest

    def at(x, y):
        return (x + drop[0], y + drop[1])

    if code == "fl":
        a, b = at(-6, 4), at(40, 0)
        cv.line(a, b, 2.4, colour)
        keys = (at(14, 2.8), b)
        hands = (at(14, 3), at(32, 1))
        bell = b
    elif code in ("ob", "cl"):
        width = 3.2 if code == "ob" else 4.2
        a, b = at(0, 6), at(10, 44)
        cv.line(a, b, width, colour)
        flare = 3.0 if code == "ob" else 5.0
        cv.draw.polygon([cv.p(*at(10 - flare, 46)), cv.p(*at(10 + flare, 46)), cv.p(*at(9, 38))], fill=colour)
        keys = (at(2, 14), at(9, 40))
        hands = (at(3, 16), at(7, 32))
        bell = at(10, 46)
    elif code == "sax":
        a, m, b = at(0, 6), at(4, 18), at(4, 44)
        cv.line(a, m, 2, colour)
        cv.line(m, b, 5, colour)
        cv.draw.arc([*cv.p(*at(4, 38)), *cv.p(*at(20, 50))], 0, 180, fill=colour, width=round(5 * cv.u))
        cv.line(at(20, 44), at(20, 30), 5, colour)
        cv.ellipse(at(20, 29), 5, 2, colour)
        keys = (m, b)
        hands = (at(4, 24), at(4, 38))
        bell = at(20, 28)
    else:  # bassoon: a long pipe beside the body, reed on a bent crook
        a, b = at(-12, 58), at(14, -28)
        cv.line(a, b, 5, colour)
        cv.line(at(2, 12), mouth if pose is not None else at(0, 6), 1, (200, 200, 200))
        keys = (at(-6, 40), at(6, 0))
        hands = (at(-4, 34), at(4, 10))
        bell = b
    _keys(cv, *keys, count=6, closed=_closed_keys(pose, 6))
    for h in hands:
        cv.line((0, 16), h, 3.5, cv.look.suit)
        cv.disc(h, 2.2, cv.look.skin)
    if pose is not None:
        cv.waves(bell, pose.loudness, pose.stroke, -math.pi / 2 if code != "fl" else 0.0, tuple(c // 2 for c in colour))


def _brass(cv: _Canvas, code: str, pose: Optional[Pose]) -> None:
    colour = cv.look.material(code)
    dark = tuple(c * 2 // 3 for c in colour)
    lift = (0, 0) if pose is not None else (4, 32)

    def at(x, y):
        return (x + lift[0], y + lift[1])

    if code == "tpt":
        cv.line(at(0, 4), at(30, 4), 2.4, colour)
        cv.draw.polygon([cv.p(*at(28, 4)), cv.p(*at(40, -3)), cv.p(*at(40, 11))], fill=colour)
        for k in range(3):
            closed = k < _closed_keys(pose, 3)
            cv.line(at(10 + 5 * k, 4 - (1 if closed else 4)), at(10 + 5 * k, 8), 2, dark)
        hand, bell, direction = at(14, 8), at(40, 4), 0.0
    elif code == "hn":
        cv.draw.ellipse([*cv.p(*at(2, 14)), *cv.p(*at(30, 42))], outline=colour, width=round(3.5 * cv.u))
        cv.line(at(0, 4), at(8, 18), 1.6, colour)
        cv.draw.polygon([cv.p(*at(24, 36)), cv.p(*at(40, 46)), cv.p(*at(32, 54))], fill=colour)
        for k in range(3):
            cv.disc(at(12 + 5 * k, 28), 1.6, KEY_CLOSED if k < _closed_keys(pose, 3) else dark)
        hand, bell, direction = at(16, 30), at(36, 50), math.radians(135)
    elif code == "tbn":
        # The slide: low notes push it out (a longer tube).
        reach = 16 + (PITCH_LEVELS - 1 - (pose.pitch if pose else PITCH_LEVELS - 1)) * 5
        cv.line(at(0, 4), at(16 + reach, 4), 1.6, colour)
        cv.line(at(4, 8), at(16 + reach, 8), 1.6, colour)
        cv.line(at(16 + reach, 4), at(16 + reach, 8), 1.6, colour)
        cv.line(at(0, 2), at(-8, -2), 2, colour)
        cv.draw.polygon([cv.p(*at(-6, -2)), cv.p(*at(-18, -10)), cv.p(*at(-18, 6))], fill=colour)
        hand, bell, direction = at(16 + reach, 6), at(-18, -2), -math.pi / 2 - 0.8
    else:  # tuba: big upright body in the lap, bell up
        cv.draw.rounded_rectangle([*cv.p(*at(-8, 16)), *cv.p(*at(8, 52))], radius=6 * cv.u, fill=colour)
        cv.draw.polygon([cv.p(*at(-6, 18)), cv.p(*at(6, 18)), cv.p(*at(14, -12)), cv.p(*at(-14, -12))], fill=colour)
        cv.ellipse(at(0, -12), 14, 3, dark)
        cv.line(at(0, 4), at(-8, 24), 1.6, dark)
        for k in range(4):
            cv.line(at(-5 + 4 * k, 26), at(-5 + 4 * k, 32 - (2 if k < _closed_keys(pose, 4) else 4)), 2, dark)
        hand, bell, direction = at(-2, 30), at(0, -12), 0.0
    cv.line((10, 14), hand, 4, cv.look.suit)
    cv.disc(hand, 2.2, cv.look.skin)
    if pose is not None:
        cv.waves(bell, pose.loudness, pose.stroke, direction, dark)


_DRAW = {"string": _strings, "woodwind": _woodwind, "brass": _brass}


def _lit(image: Image.Image, light: tuple[float, float, float]) -> np.ndarray:
    """The picture under ``light``: each channel through its own gain (a lookup table, exact)."""
    pixels = np.asarray(image).copy()
    levels = np.arange(256)
    for c, gain in enumerate(light):
        pixels[..., c] = np.clip(np.rint(levels * gain), 0, 255).astype(np.uint8)[pixels[..., c]]
    return pixels


class PlayerSprites:
    """Sprites of one player (instrument and look) for a column of ``width`` x ``height`` pixels, drawn on demand."""

    def __init__(self, code: str, look: Look, width: int, height: int):
        self.code, self.look, self.width, self.height = code, look, width, height
        self._draw = _DRAW[instrument(code).family]
        self._cache: dict[Optional[Pose], np.ndarray] = {}

    def __call__(self, pose: Optional[Pose]) -> np.ndarray:
        """(height, width, 3) uint8 picture of the player in ``pose`` (None: at rest)."""
        sprite = self._cache.get(pose)
        if sprite is None:
            cv = _Canvas(self.width, self.height, self.look)
            _figure(cv, pose)
            self._draw(cv, self.code, pose)
            sprite = self._cache[pose] = _lit(cv.image.reduce(SUPERSAMPLE), self.look.light)
        return sprite
