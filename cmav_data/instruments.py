"""The 13 URMP instruments: codes, Sub-URMP class folders, class indices, GM programs, ranges.

One table (``manifests/instruments.csv``) is the single source of these facts; everything else
(URMP reader, demo corpus, builders, classifiers) looks instruments up here.
"""

from __future__ import annotations

from dataclasses import dataclass

from cmav_data.manifests import read_table


@dataclass(frozen=True)
class Instrument:
    code: str  # URMP code in folder and file names, e.g. "vn"
    class_name: str  # Sub-URMP class folder, e.g. "violin"
    class_index: int  # position of class_name in alphabetical order (published release order)
    display_name: str
    family: str  # string, woodwind or brass
    gm_program: int  # General MIDI program (0-based) used to render the demo corpus
    low_midi: int  # playing range, sounding pitch, MIDI note numbers
    high_midi: int


def _load() -> dict[str, Instrument]:
    out = {}
    for r in read_table("instruments.csv"):
        out[r["code"]] = Instrument(
            code=r["code"],
            class_name=r["class_name"],
            class_index=int(r["class_index"]),
            display_name=r["display_name"],
            family=r["family"],
            gm_program=int(r["gm_program"]),
            low_midi=int(r["low_midi"]),
            high_midi=int(r["high_midi"]),
        )
    return out


INSTRUMENTS: dict[str, Instrument] = _load()
BY_CLASS: dict[str, Instrument] = {i.class_name: i for i in INSTRUMENTS.values()}
CLASS_NAMES: tuple[str, ...] = tuple(sorted(BY_CLASS))


class UnknownInstrumentError(ValueError):
    pass


def instrument(code: str) -> Instrument:
    """The instrument for a URMP code; a clear error for an unknown one."""
    try:
        return INSTRUMENTS[code]
    except KeyError:
        known = ", ".join(sorted(INSTRUMENTS))
        raise UnknownInstrumentError(f"unknown instrument code {code!r} (known: {known})") from None
