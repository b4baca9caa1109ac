"""Griffin-Lim inversion of an LMS: length, level, fidelity, determinism, WAV bytes, bad input."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf

from cmav_data.features.inverse import db_to_power, lms_to_audio, write_wav
from cmav_data.features.reference import reference_chunk
from cmav_data.features.specs import LmsSpec

SPEC = LmsSpec()
F0 = 220.0


def _tone(amplitude: float) -> np.ndarray:
    t = np.arange(SPEC.n_samples) / SPEC.sample_rate
    return (amplitude * sum(np.sin(2 * np.pi * F0 * k * t) / k for k in range(1, 5))).astype(np.float32)


def test_length_level_and_fidelity_of_an_inverted_tone():
    lms = reference_chunk(_tone(0.3), SPEC)
    audio = lms_to_audio(lms, SPEC, peak_dbfs=-6.0)
    assert audio.dtype == np.float32 and audio.shape == (SPEC.n_samples,)
    assert 20 * np.log10(np.abs(audio).max()) == pytest.approx(-6.0, abs=1e-4)
    # The inverted sound's LMS is the original's where the sound is (within 40 dB of its top),
    # up to the level change, and its strongest frequency is the tone's fundamental.
    again = reference_chunk(audio, SPEC)
    loud = lms > lms.max() - 40
    assert np.median(np.abs(again[loud] - lms[loud])) < 3.0
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.fft.rfftfreq(len(audio), 1 / SPEC.sample_rate)[spectrum.argmax()] == pytest.approx(F0, abs=3)


def test_the_output_level_is_fixed_whatever_the_input_level_and_silence_stays_silent():
    quiet, loud = (lms_to_audio(reference_chunk(_tone(a), SPEC), SPEC) for a in (0.01, 0.5))
    assert np.abs(quiet).max() == pytest.approx(np.abs(loud).max(), rel=1e-5)
    assert np.abs(loud).max() == pytest.approx(10 ** (-3 / 20), rel=1e-5)  # the default -3 dBFS
    assert not lms_to_audio(np.full(SPEC.shape, -np.inf), SPEC).any()
    # A loud broadband LMS at a large reference power (a generator's noise): solved like any other
    # (once, the least squares ran for minutes at this scale).
    noisy = np.random.default_rng(0).uniform(-40, 0, SPEC.shape)
    audio = lms_to_audio(noisy, LmsSpec(db_ref=8000.0), n_iter=4)
    assert audio.shape == (SPEC.n_samples,) and np.abs(audio).max() == pytest.approx(10 ** (-3 / 20), rel=1e-5)


def test_the_db_mapping_is_the_specs():
    assert db_to_power(np.array([0.0, -10.0]), LmsSpec(db_ref=4.0)) == pytest.approx([4.0, 0.4])
    # The default full-scale reference: 0 dB is the mel power peak of a full-scale 1 kHz sine.
    t = np.arange(SPEC.n_samples) / SPEC.sample_rate
    sine = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    lms = reference_chunk(sine, SPEC)
    assert lms.max() == pytest.approx(0.0, abs=1e-4)
    mel_power = librosa.feature.melspectrogram(y=sine, sr=SPEC.sample_rate, n_fft=SPEC.n_fft,
                                               hop_length=SPEC.hop_length, pad_mode=SPEC.pad_mode)
    assert db_to_power(lms, SPEC).max() == pytest.approx(mel_power.max(), rel=1e-4)


def test_inversion_is_deterministic_and_seeded(tmp_path):
    lms = reference_chunk(_tone(0.3), SPEC)
    a, b = (tmp_path / "a.wav"), (tmp_path / "b.wav")
    write_wav(a, lms_to_audio(lms, SPEC, n_iter=8, seed=1), SPEC.sample_rate)
    write_wav(b, lms_to_audio(lms, SPEC, n_iter=8, seed=1), SPEC.sample_rate)
    assert a.read_bytes() == b.read_bytes()
    assert not np.array_equal(lms_to_audio(lms, SPEC, n_iter=8, seed=1), lms_to_audio(lms, SPEC, n_iter=8, seed=2))
    audio, rate = sf.read(a, dtype="float32")
    assert rate == SPEC.sample_rate and len(audio) == SPEC.n_samples
    assert 20 * np.log10(np.abs(audio).max()) == pytest.approx(-3.0, abs=0.01)  # 16-bit PCM keeps the level


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(128, 44\)"):
        lms_to_audio(np.zeros((64, 44)), SPEC)
    with pytest.raises(ValueError, match="standardised"):
        lms_to_audio(np.zeros(SPEC.shape), LmsSpec(normalize="standard"))
    with pytest.raises(ValueError, match="peak_dbfs"):
        lms_to_audio(np.zeros(SPEC.shape), SPEC, peak_dbfs=3.0)
