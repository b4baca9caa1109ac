"""Sound and annotation files of a demo piece: AuSep/AuMix WAVs, Notes, F0s and the Sco_ MIDI.

Each part is rendered on its own from the General MIDI SoundFont shipped with pretty_midi
(TimGM6mb.sf2) by TinySoundFont, with reverb and chorus sends (CC 91/93) at 0. Every note is cut
``RELEASE`` seconds after its note-off with a fade, so there is silence exactly where no note sounds
(no reverb tail) and the Notes/F0s files, derived from the same notes, describe the audio.
Files are 48 kHz mono 24-bit PCM like URMP's. The parts share one gain chosen so the mix (their
sum, as in URMP's AuMix) peaks at -1 dBFS, after levelling each part to the same loudness.

F0s use a 10 ms hop: row i is time i * 0.01 s and the F0 of the note sounding then (0 when none),
the equal-tempered frequency of the rendered MIDI pitch (the SoundFont plays in tune).
"""

from __future__ import annotations

import io
import math
import os
from typing import Sequence

import numpy as np
import soundfile as sf

from cmav_data.atomic import atomic_path
from cmav_data.demo.scores import Note
from cmav_data.instruments import instrument

SAMPLE_RATE = 48000
RELEASE = 0.1  # seconds of sound after a note-off, faded to zero
F0_HOP = 0.01  # seconds between rows of the F0s files
PEAK = 10 ** (-1 / 20)  # -1 dBFS
MIDI_RESOLUTION = 480  # ticks per quarter note in the Sco_ files


def soundfont_path() -> str:
    import pretty_midi

    return os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")


def midi_hz(midi: int) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def render_part(notes: Sequence[Note], gm_program: int, n_samples: int) -> np.ndarray:
    """Mono float64 audio of ``notes`` played by ``gm_program``, ``n_samples`` long."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    synth.program_select(0, synth.sfload(soundfont_path()), 0, gm_program)
    synth.control_change(0, 91, 0)  # reverb send
    synth.control_change(0, 93, 0)  # chorus send
    n_release = round(RELEASE * SAMPLE_RATE)
    fade = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, n_release))
    out = np.zeros(n_samples)

    def generate(n: int) -> np.ndarray:
        stereo = np.frombuffer(synth.generate(n), dtype=np.float32).reshape(-1, 2)
        return stereo.mean(axis=1, dtype=np.float64)

    for note in notes:
        start = round(note.onset * SAMPLE_RATE)
        n_on = max(1, round(note.duration * SAMPLE_RATE))
        synth.noteon(0, note.midi, note.velocity)
        sustain = generate(n_on)
        synth.noteoff(0, note.midi)
        release = generate(n_release) * fade
        synth.sounds_off(0)
        generate(4096)  # let the killed voices die away before the next note
        sound = np.concatenate([sustain, release])[: max(0, n_samples - start)]
        out[start : start + len(sound)] += sound
    return out


def level_parts(parts: Sequence[Sequence[Note]], codes: Sequence[str], seconds: float) -> list[np.ndarray]:
    """Each part rendered and levelled to the same loudness (RMS 1 over its sounding samples)."""
    n = math.ceil(seconds * SAMPLE_RATE)
    tracks = []
    for notes, code in zip(parts, codes):
        audio = render_part(notes, instrument(code).gm_program, n)
        sounding = audio[np.abs(audio) > 1e-4]
        rms = float(np.sqrt(np.mean(sounding**2))) if len(sounding) else 0.0
        tracks.append(audio / rms if rms > 0 else audio)
    return tracks


def mix_gain(levelled: Sequence[np.ndarray]) -> float:
    """The one gain that makes the loudest of the tracks and their sum peak at -1 dBFS."""
    peak = max(float(np.max(np.abs(x))) for x in [sum(levelled), *levelled])
    return PEAK / peak if peak > 0 else 1.0


def render_parts(parts: Sequence[Sequence[Note]], codes: Sequence[str], seconds: float) -> list[np.ndarray]:
    """The separated tracks, levelled and sharing one gain so that their sum peaks at -1 dBFS."""
    levelled = level_parts(parts, codes, seconds)
    gain = mix_gain(levelled)
    return [x * gain for x in levelled]


def gain_beside(levelled: Sequence[np.ndarray], fixed: np.ndarray, ceiling: float) -> float:
    """The largest gain up to ``ceiling`` for ``levelled`` such that neither they nor their sum plus
    the ``fixed`` tracks' sum (already at their level, each within -1 dBFS) exceed -1 dBFS."""
    own = sum(levelled)
    gain = min([ceiling] + [PEAK / float(np.max(np.abs(x))) for x in levelled if np.any(x)])
    moving = np.abs(own) > 0
    # |g * own + fixed| <= PEAK at every sample: g <= (PEAK - sign(own) * fixed) / |own|
    bounds = (PEAK - np.sign(own[moving]) * fixed[moving]) / np.abs(own[moving])
    return float(min(gain, bounds.min(initial=gain)))


def write_wav(path: str | os.PathLike, audio: np.ndarray) -> None:
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_24", format="WAV")


def notes_text(notes: Sequence[Note]) -> str:
    """URMP Notes file: onset seconds, pitch Hz, duration seconds; tab-separated, one note a line."""
    return "".join(f"{n.onset:.4f}\t{midi_hz(n.midi):.4f}\t{n.duration:.4f}\n" for n in notes)


def f0_track(notes: Sequence[Note], seconds: float) -> np.ndarray:
    """F0 in Hz every ``F0_HOP`` seconds over the piece, 0 where no note sounds."""
    times = np.arange(math.ceil(seconds / F0_HOP)) * F0_HOP
    f0 = np.zeros_like(times)
    for n in notes:
        f0[(times >= n.onset) & (times < n.onset + n.duration)] = midi_hz(n.midi)
    return f0


def f0_text(notes: Sequence[Note], seconds: float) -> str:
    """URMP F0s file: time seconds, F0 Hz (0 when unvoiced); tab-separated."""
    f0 = f0_track(notes, seconds)
    return "".join(f"{i * F0_HOP:.2f}\t{hz:.4f}\n" for i, hz in enumerate(f0))


def score_midi(parts: Sequence[Sequence[Note]], codes: Sequence[str], quarter_bpm: float) -> bytes:
    """Standard MIDI file of the rendered notes, one track per part, at the performance tempo."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION, initial_tempo=quarter_bpm)
    for notes, code in zip(parts, codes):
        inst = instrument(code)
        track = pretty_midi.Instrument(program=inst.gm_program, name=inst.display_name)
        track.notes = [pretty_midi.Note(n.velocity, n.midi, n.onset, n.onset + n.duration) for n in notes]
        pm.instruments.append(track)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()
