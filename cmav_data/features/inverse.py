"""From a log-mel spectrogram back to sound: Griffin-Lim through the feature config, to listen to an LMS.

An LMS keeps no phase and, below the mel filters' resolution, no fine frequency detail, so what comes
back is an approximation whatever made the LMS; to compare a generated LMS with a real one by ear,
invert both in this same way. The steps are librosa's mel inversion
(``librosa.feature.inverse.mel_to_audio``) with every parameter taken from the :class:`LmsSpec`:

1. dB -> power with the spec's own level reference (:func:`db_to_power`);
2. mel power (scaled to a peak of 1) -> linear-frequency magnitude by non-negative least squares
   (``mel_to_stft``);
3. Griffin-Lim's phase estimate (``griffinlim``), ``n_iter`` iterations from seeded random phases
   (``mel_to_audio`` itself draws them unseeded; seeding is the one change, so the same LMS gives the
   same bytes), cut or padded to the spec's ``n_samples``;
4. the waveform scaled to a peak of ``peak_dbfs`` dB re full scale (digital silence stays silent):
   every file is heard at one level, as a listening test wants, so loudness is not compared here.
"""

from __future__ import annotations

import os

import librosa
import numpy as np

from cmav_data.atomic import write_bytes
from cmav_data.features.reference import reference_power
from cmav_data.features.specs import LmsSpec
from cmav_data.media import wav_bytes

DEFAULT_ITERATIONS = 32
DEFAULT_PEAK_DBFS = -3.0


def db_to_power(lms_db: np.ndarray, spec: LmsSpec) -> np.ndarray:
    """Inverse of the spec's ``10 log10(power / ref)``, ``ref`` the spec's own reference power
    (``reference.reference_power``: for "full_scale", a full-scale 1 kHz sine's peak). The floors
    are not undone: floored bins come back at the floor's power."""
    return reference_power(spec) * np.power(10.0, np.asarray(lms_db, np.float64) / 10.0)


def lms_to_audio(lms_db: np.ndarray, spec: LmsSpec, n_iter: int = DEFAULT_ITERATIONS,
                 peak_dbfs: float = DEFAULT_PEAK_DBFS, seed: int = 0) -> np.ndarray:
    """A float32 waveform [spec.n_samples] at ``spec.sample_rate`` from one LMS [n_mels, frames] in dB."""
    if spec.kind != "lms":
        raise ValueError(f"only an LMS can be inverted here, not a {spec.kind} spec")
    lms_db = np.asarray(lms_db)
    if lms_db.shape != spec.shape:
        raise ValueError(f"an LMS of this spec is {spec.shape} (mels, frames), not {lms_db.shape}")
    if spec.normalize != "none":
        raise ValueError("a per-chunk standardised LMS has lost its dB scale and cannot be inverted")
    if peak_dbfs > 0:
        raise ValueError(f"peak_dbfs must be <= 0 dB re full scale, not {peak_dbfs}")
    power = db_to_power(lms_db, spec)
    peak = power.max()
    if not np.isfinite(peak) or peak <= 0:
        return np.zeros(spec.n_samples, np.float32)
    # Solved at a peak of 1: L-BFGS-B's stopping tolerance is absolute, and at full-scale powers
    # (~1e4) it ran for minutes on one noisy LMS. The solution scales with the input, and the
    # output is peak-normalised anyway.
    magnitude = librosa.feature.inverse.mel_to_stft(
        power / peak, sr=spec.sample_rate, n_fft=spec.n_fft, power=2.0,
        fmin=spec.fmin, fmax=spec.fmax, htk=spec.htk, norm=spec.mel_norm)
    audio = librosa.griffinlim(
        magnitude, n_iter=n_iter, hop_length=spec.hop_length, n_fft=spec.n_fft, window=spec.window,
        center=spec.center, pad_mode=spec.pad_mode, length=spec.n_samples,
        random_state=np.random.default_rng(seed))
    return peak_normalize(audio, peak_dbfs)


def peak_normalize(audio: np.ndarray, peak_dbfs: float) -> np.ndarray:
    """``audio`` scaled so its largest absolute sample is ``peak_dbfs`` dB re full scale (float32)."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak == 0:
        return np.zeros(len(audio), np.float32)
    return (audio * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM mono WAV, written atomically."""
    write_bytes(path, wav_bytes(audio, sample_rate))
