"""Reference features: librosa, one chunk at a time, exactly as a user of librosa would write it.

This is the ground truth the fast path is tested against. It calls librosa per chunk on purpose:
a single librosa call on a whole batch applies ``top_db`` against the loudest chunk of the batch.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np

from cmav_data.features.specs import (FULL_SCALE, FULL_SCALE_HZ, CqtSpec, FeatureSpec, LmsSpec, MfccSpec, StftSpec,
                                      normalize_features)


@functools.lru_cache(maxsize=None)
def reference_power(spec: FeatureSpec) -> float:
    """The power mapped to 0 dB: ``spec.db_ref``, or for "full_scale" the largest power of a
    full-scale (amplitude 1) 1 kHz sine over the whole chunk in this representation, computed
    here with librosa and shared by the fast path (so both use the very same number)."""
    if spec.db_ref != FULL_SCALE:
        return float(spec.db_ref)
    t = np.arange(spec.n_samples) / spec.sample_rate
    sine = np.sin(2 * np.pi * FULL_SCALE_HZ * t).astype(np.float32)
    return float(_power(sine, spec).max())


def _power_to_db(power: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    db = librosa.power_to_db(power, ref=reference_power(spec), amin=spec.amin, top_db=spec.top_db)
    return db if spec.floor_db is None else np.maximum(db, spec.floor_db)


def _stft_power(audio: np.ndarray, spec: StftSpec) -> np.ndarray:
    stft = librosa.stft(
        audio, n_fft=spec.n_fft, hop_length=spec.hop_length, window=spec.window,
        center=spec.center, pad_mode=spec.pad_mode,
    )
    return np.abs(stft) ** 2


def _mel_power(audio: np.ndarray, spec: LmsSpec) -> np.ndarray:
    return librosa.feature.melspectrogram(
        y=audio, sr=spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop_length,
        window=spec.window, center=spec.center, pad_mode=spec.pad_mode, power=2.0,
        n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax, htk=spec.htk, norm=spec.mel_norm,
    )


def _cqt_power(audio: np.ndarray, spec: CqtSpec) -> np.ndarray:
    cqt = librosa.cqt(
        audio, sr=spec.sample_rate, hop_length=spec.hop_length, fmin=spec.fmin, n_bins=spec.n_bins,
        bins_per_octave=spec.bins_per_octave, tuning=spec.tuning, filter_scale=spec.filter_scale,
        sparsity=spec.sparsity, window=spec.window, pad_mode=spec.pad_mode, res_type=spec.res_type,
    )
    return np.abs(cqt) ** 2


def _power(audio: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The power that ends in dB: mel power for LMS and MFCC, |STFT|^2, |CQT|^2."""
    if isinstance(spec, LmsSpec):
        return _mel_power(audio, spec)
    if isinstance(spec, StftSpec):
        return _stft_power(audio, spec)
    return _cqt_power(audio, spec)


def reference_chunk(audio: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Features of one chunk (float32 [n_samples]) as float32 [rows, frames], before normalisation."""
    db = _power_to_db(_power(audio, spec), spec)
    if isinstance(spec, MfccSpec):
        return librosa.feature.mfcc(
            S=db, n_mfcc=spec.n_mfcc, dct_type=2, norm=spec.dct_norm, lifter=spec.lifter
        ).astype(np.float32)
    return db.astype(np.float32)


def reference_features(audio: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Features of a batch of chunks (float32 [B, n_samples]) as float32 [B, rows, frames]."""
    out = np.empty((len(audio), *spec.shape), dtype=np.float32)
    for i, chunk in enumerate(audio):
        out[i] = reference_chunk(chunk, spec)
    return normalize_features(out, spec)
