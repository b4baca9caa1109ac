"""Fast batched features: same numbers as librosa within tolerance, several times faster.

Three FFT engines compute STFT, LMS and MFCC (``FastFeatures(spec, fft=...)``):

- ``fftw`` (CPU, the default when pyFFTW is installed: ``pip install cmav[fftw]``, which ``make``
  does; FFTW is GPL-licensed, cmav's own code is MIT) and ``pocketfft`` (CPU, scipy.fft, the default
  without pyFFTW). FFTW's float64 real FFT of 2048 points runs about 2x faster here than scipy's,
  and a little faster than scipy's float32 one.
- ``torch`` (the default on a GPU; on CPU it is about 3x slower than ``fftw`` and kept for tests).

What makes the CPU engines fast (measured with benchmarks/bench_features.py on 2 cores):
- the FFT reads the frames straight from the padded signal (an overlapping strided view: frames
  overlap 4x, so materialising them costs a quarter of the FFT) and, for cosine-sum windows (Hann,
  Hamming, Blackman...), the window is applied in the frequency domain, where it is a 3- to 5-tap
  convolution of the spectrum (exact up to float64 rounding, 4e-16 of the peak);
- window, power and mel run in one numba kernel right after each group of 2 chunks is transformed,
  while its spectra are in cache; the mel sums run over 8 frames at once, on the filters' supports
  only (a dense [n_mels, 1 + n_fft/2] product is 98% zeros);
- one batch per core (threads; the FFT, the kernels and torch release the GIL), never one op split
  across cores: on busy shared cores, an op's threads wait for one another;
- one fixed level reference (``reference.reference_power``, the very number the reference uses) and
  a fixed floor; the optional ``top_db`` against each chunk's own maximum (never the batch's).

Precision: the FFT runs in float64, as in librosa (its float64 window promotes float32 frames).
A float32 FFT is faster but its rounding noise reaches 2e-3 dB on bins near the -80 dB floor, above
the 1e-3 dB parity goal; no cheap correction exists (a frequency-domain pre-emphasis makes it worse,
and recomputing the frames at risk in float64 means about half of them). Power is narrowed to
float32 once squared: the mel sums, log and top_db in float32 add under 1e-5 dB (the DCT of MFCC
stays float64: coefficients reach +-500).

Padding and windows follow librosa exactly: ``center=True`` pads with zeros (``pad_mode="constant"``),
the window is scipy's periodic window (librosa ``fftbins=True``), mel filters are librosa's.

CQT: librosa's own algorithm (``librosa.cqt``: early downsampling, then per octave a rectangular
STFT times a sparse frequency-domain filter basis, then halving the rate with soxr), with the filter
bases built once instead of on every call, the STFTs batched in torch, the sparse products batched
as the columns of one scipy product per octave (librosa's own summation order), and soxr
called once per octave on the whole batch (as channels) rather than once per chunk. Same filters,
same resampler: it matches librosa within 2e-3 dB (float32 products, as librosa; see the tests).
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import soxr
import torch

from cmav_data.features.kernels import windowed_mel_power, windowed_power
from cmav_data.features.reference import reference_power
from cmav_data.features.specs import CqtSpec, FeatureSpec, LmsSpec, MfccSpec, StftSpec, normalize_features

try:
    import pyfftw
except ImportError:  # optional (GPL): the scipy engine is the fallback
    pyfftw = None

FFT_ENGINES = ("fftw", "pocketfft", "torch")
POWER_DTYPE = torch.float32  # power, mel and dB (after the float64 FFT): see the module docstring
BATCH_SIZE = 16  # chunks per batch (per task of a thread)
GROUP_SIZE = 2  # chunks per FFT call on CPU: frames and spectra of 2 chunks (~1.4 MB) stay in cache
MEL_GROUP = 16  # mel filters per band-limited product (torch engine)
_PLAN_LOCK = threading.Lock()  # FFTW's planner is not thread-safe


def default_fft(device: str | torch.device = "cpu") -> str:
    """The FFT engine used unless one is asked for: FFTW on CPU when installed, torch on a GPU."""
    if torch.device(device).type != "cpu":
        return "torch"
    return "fftw" if pyfftw is not None else "pocketfft"


def window_taps(window: np.ndarray) -> np.ndarray | None:
    """The window's DFT / n at offsets -2..2 (float64 [5]) when that is all of it, else None.

    Multiplying a frame by the window is convolving its spectrum with these taps: true of the
    symmetric cosine-sum windows (rectangular, Hann, Hamming, Blackman), whose DFT is real.
    """
    n = len(window)
    spectrum = np.fft.fft(window) / n
    taps = spectrum[np.arange(-2, 3) % n]
    rest = np.delete(spectrum, np.arange(-2, 3) % n)
    scale = np.abs(spectrum).max()
    if np.abs(rest).max(initial=0.0) > 1e-14 * scale or np.abs(taps.imag).max() > 1e-14 * scale:
        return None
    # Exact zeros where the DFT is rounding noise (Hann's W[+-2]): the kernel then takes its 3-tap loop.
    return np.where(np.abs(taps.real) > 1e-14 * scale, taps.real, 0.0)


def _mel_bands(mel: np.ndarray, group: int) -> list[tuple[slice, slice, torch.Tensor]]:
    """Split a mel matrix [n_mels, n_bins] into (mel rows, bin range, weights^T) blocks.

    Each block's bin range is the union of its filters' supports, so the blocks' products
    sum to the full product while skipping the zero regions.
    """
    bands = []
    for start in range(0, mel.shape[0], group):
        rows = slice(start, min(start + group, mel.shape[0]))
        nonzero = np.flatnonzero(mel[rows].any(axis=0))
        # An empty filter (possible with many mels and a short n_fft) still needs a bin range.
        lo, hi = (nonzero[0], nonzero[-1] + 1) if len(nonzero) else (0, 1)
        weights = torch.from_numpy(np.ascontiguousarray(mel[rows, lo:hi].T, dtype=np.float64))
        bands.append((rows, slice(int(lo), int(hi)), weights))
    return bands


def _mel_matrix(spec: LmsSpec) -> np.ndarray:
    return librosa.filters.mel(
        sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax,
        htk=spec.htk, norm=spec.mel_norm, dtype=np.float64,
    )


class FastFeatures:
    """Callable computing ``spec``'s features for a batch: float32 [B, n_samples] -> [B, rows, frames].

    Holds the window, filterbanks, FFT plans and reusable buffers; build one per spec and call it
    many times. ``fft`` picks the engine of STFT, LMS and MFCC (see the module docstring; default
    ``default_fft(device)``); CQT always runs its batched librosa algorithm in torch.
    """

    def __init__(self, spec: FeatureSpec, device: str | torch.device = "cpu", fft: str | None = None) -> None:
        self.spec = spec
        self.device = torch.device(device)
        self.fft = fft or default_fft(self.device)
        if self.fft not in FFT_ENGINES:
            raise ValueError(f"unknown FFT engine {self.fft!r} (known: {', '.join(FFT_ENGINES)})")
        if self.fft == "fftw" and pyfftw is None:
            raise ValueError("the fftw engine needs pyFFTW: pip install 'cmav[fftw]'")
        if self.fft != "torch" and self.device.type != "cpu":
            raise ValueError(f"the {self.fft} engine runs on CPU only, not on {self.device}")
        self.db_offset = 10.0 * float(np.log10(max(spec.amin, reference_power(spec))))
        if isinstance(spec, CqtSpec):
            self.power_of = _CqtPlan(spec, self.device).power
        else:
            mel = _mel_matrix(spec) if isinstance(spec, LmsSpec) else None
            engine = _TorchStft if self.fft == "torch" else _CpuStft
            self.power_of = engine(spec, mel, self.fft, self.device).power
        if isinstance(spec, MfccSpec):
            dct = scipy.fft.dct(np.eye(spec.n_mels), type=2, norm=spec.dct_norm, axis=0)[: spec.n_mfcc]
            if spec.lifter > 0:
                n = np.arange(1, spec.n_mfcc + 1)
                dct *= (1 + (spec.lifter / 2) * np.sin(np.pi * n / spec.lifter))[:, None]
            self.dct_t = torch.from_numpy(np.ascontiguousarray(dct.T)).to(self.device)

    def __call__(self, audio: np.ndarray, executor: Executor | None = None) -> np.ndarray:
        """Features of ``audio`` float32 [B, n_samples]; ``executor`` (threads) runs batches in parallel.

        With an executor, give torch one thread (``torch.set_num_threads(1)``): one batch per core is
        faster than every op split across cores, and much faster on busy cores, where each op's
        threads wait for one another. Results do not depend on the number of workers.
        """
        out = np.empty((len(audio), *self.spec.shape), dtype=np.float32)

        def compute(start: int) -> None:
            batch = np.ascontiguousarray(audio[start : start + BATCH_SIZE])
            with torch.inference_mode():  # thread-local, so entered in each worker
                out[start : start + BATCH_SIZE] = self._finish(self.power_of(batch)).cpu().numpy()

        starts = range(0, len(audio), BATCH_SIZE)
        list(executor.map(compute, starts) if executor else map(compute, starts))
        return normalize_features(out, self.spec)

    def _to_db(self, power: torch.Tensor) -> torch.Tensor:
        """10 log10(max(amin, S) / ref) in place, floored at floor_db (and top_db below each chunk's maximum)."""
        spec = self.spec
        db = power.clamp_(min=spec.amin).log10_().mul_(10.0).sub_(self.db_offset)
        if spec.top_db is not None:
            db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - spec.top_db, out=db)
        if spec.floor_db is not None:
            db = db.clamp_(min=spec.floor_db)
        return db

    def _finish(self, power: torch.Tensor) -> torch.Tensor:
        """dB (and DCT for MFCC) of power [B, frames, rows], returned as [B, rows, frames]."""
        db = self._to_db(power)
        if isinstance(self.spec, MfccSpec):
            db = db.double() @ self.dct_t  # float64 sums: coefficients reach +-500, tolerance 1e-3
        return db.transpose(1, 2)


class _PerThread:
    """Buffers and plans reused across batches, one set per thread (batches may run in parallel)."""

    def __init__(self) -> None:
        self._items: dict[tuple, object] = {}

    def get(self, key: tuple, make):
        full_key = (threading.get_ident(), *key)
        if full_key not in self._items:
            self._items[full_key] = make()
        return self._items[full_key]


class _CpuStft:
    """Power (or mel power) STFT on CPU: FFTW or scipy's pocketfft, then the numba kernels."""

    def __init__(self, spec: StftSpec, mel: np.ndarray | None, fft: str, device: torch.device) -> None:
        self.spec = spec
        self.fft = fft
        window = scipy.signal.get_window(spec.window, spec.n_fft, fftbins=True)
        taps = window_taps(window)
        # Other windows are applied to materialised frames (then the taps are the identity).
        self.window = None if taps is not None else window
        self.taps = taps if taps is not None else np.array([0.0, 0.0, 1.0, 0.0, 0.0])
        self.pad = spec.n_fft // 2 if spec.center else 0
        # Rows of the padded signal start on 64-byte boundaries (SIMD-aligned FFT input).
        self.row_length = -(-(spec.n_samples + 2 * self.pad) // 8) * 8
        self.mel = None
        if mel is not None:
            supports = [np.flatnonzero(row) for row in mel]
            lo = np.array([s[0] if len(s) else 0 for s in supports], dtype=np.int64)
            hi = np.array([s[-1] + 1 if len(s) else 0 for s in supports], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(hi - lo)]).astype(np.int64)
            weights = np.concatenate([mel[m, lo[m] : hi[m]] for m in range(len(mel))]).astype(np.float32)
            self.mel = (lo, hi, offsets, weights)
        self.rows = spec.n_mels if mel is not None else spec.n_rows  # MFCC: the DCT comes later
        self._per_thread = _PerThread()

    def _transform(self, group_size: int):
        """(padded signal buffer [g, row_length], function returning the spectra [g, frames, bins])."""
        spec = self.spec
        empty = pyfftw.empty_aligned if self.fft == "fftw" else np.empty
        padded = empty((group_size, self.row_length), np.float64)
        padded[:] = 0.0
        frames = np.lib.stride_tricks.as_strided(
            padded, (group_size, spec.n_frames, spec.n_fft), (padded.strides[0], spec.hop_length * 8, 8),
            writeable=False,
        )
        fft_input = frames
        if self.window is not None:
            fft_input = empty(frames.shape, np.float64)
        n_bins = spec.n_fft // 2 + 1
        if self.fft == "fftw":
            spectra = pyfftw.empty_aligned((group_size, spec.n_frames, n_bins), np.complex128)
            with _PLAN_LOCK:
                # FFTW_ESTIMATE: a plan chosen without timing runs, so the same on every run (and bits).
                plan = pyfftw.FFTW(fft_input, spectra, axes=(-1,), flags=("FFTW_ESTIMATE",), threads=1)

        def transform() -> np.ndarray:
            if self.window is not None:
                np.multiply(frames, self.window, out=fft_input)
            if self.fft == "fftw":
                plan()
                return spectra
            return scipy.fft.rfft(fft_input, axis=-1, workers=1)

        return padded, transform

    def power(self, audio: np.ndarray) -> torch.Tensor:
        """Power [B, frames, bins] or mel power [B, frames, n_mels] (float32) of a batch float32 [B, n]."""
        spec = self.spec
        batch = len(audio)
        out = self._per_thread.get(("out", batch), lambda: np.empty((batch, spec.n_frames, self.rows), np.float32))
        for start in range(0, batch, GROUP_SIZE):
            group = audio[start : start + GROUP_SIZE]
            padded, transform = self._per_thread.get(("fft", len(group)), lambda: self._transform(len(group)))
            if spec.center and spec.pad_mode == "reflect":
                padded[:, : spec.n_samples + 2 * self.pad] = np.pad(group, ((0, 0), (self.pad, self.pad)), "reflect")
            else:
                padded[:, self.pad : self.pad + spec.n_samples] = group
            spectra = transform().reshape(-1, spec.n_fft // 2 + 1).view(np.float64)
            target = out[start : start + len(group)].reshape(-1, self.rows)
            if self.mel is None:
                windowed_power(spectra, self.taps, target)
            else:
                windowed_mel_power(spectra, self.taps, *self.mel, target)
        return torch.from_numpy(out)


class _TorchStft:
    """Power (or mel power) STFT in torch: the GPU engine (on CPU, slower than _CpuStft; kept for tests)."""

    def __init__(self, spec: StftSpec, mel: np.ndarray | None, fft: str, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        window = scipy.signal.get_window(spec.window, spec.n_fft, fftbins=True)
        self.window = torch.from_numpy(window).to(device)
        self.mel_bands = None
        if mel is not None:
            self.mel_bands = [(r, b, w.to(device, POWER_DTYPE)) for r, b, w in _mel_bands(mel, MEL_GROUP)]
        self._per_thread = _PerThread()

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return self._per_thread.get((name, shape, dtype), lambda: torch.empty(shape, dtype=dtype, device=self.device))

    def power(self, audio: np.ndarray) -> torch.Tensor:
        """Power [B, frames, bins] or mel power [B, frames, n_mels] (float32) of a batch float32 [B, n].

        The FFT is float64 (see the module docstring); the signal is widened once while padding (4x fewer
        values than the overlapping frames) and the power is narrowed to float32 once squared.
        """
        spec = self.spec
        audio = torch.from_numpy(audio).to(self.device)
        batch = len(audio)
        pad = spec.n_fft // 2 if spec.center else 0
        padded = self._buffer("padded", (batch, audio.shape[1] + 2 * pad), torch.float64)
        if spec.pad_mode == "constant" or not spec.center:
            padded[:, :pad] = 0
            padded[:, padded.shape[1] - pad :] = 0
            padded[:, pad : padded.shape[1] - pad] = audio
        else:
            padded.copy_(torch.nn.functional.pad(audio[:, None], (pad, pad), mode="reflect")[:, 0])
        frames = padded.unfold(-1, spec.n_fft, spec.hop_length)[:, : spec.n_frames]
        windowed = torch.mul(frames, self.window, out=self._buffer("windowed", frames.shape, torch.float64))
        n_bins = spec.n_fft // 2 + 1
        complex_shape = (*frames.shape[:2], n_bins)
        stft = torch.fft.rfft(windowed, out=self._buffer("stft", complex_shape, torch.complex128))
        ri = torch.view_as_real(stft)
        # Squared in float64, then narrowed: float32 outputs of float64 products cost 2x more.
        power64 = self._buffer("power64", complex_shape, torch.float64)
        torch.mul(ri[..., 0], ri[..., 0], out=power64)
        power64.addcmul_(ri[..., 1], ri[..., 1])
        power = self._buffer("power", complex_shape, POWER_DTYPE).copy_(power64)
        if self.mel_bands is None:
            return power
        mel = self._buffer("mel", (batch, spec.n_frames, spec.n_mels), POWER_DTYPE)
        for rows, bins, weights in self.mel_bands:
            torch.matmul(power[:, :, bins], weights, out=mel[:, :, rows])
        return mel


def _halve_rate(audio: np.ndarray, factor: int, res_type: str) -> np.ndarray:
    """librosa.resample(audio, orig_sr=factor, target_sr=1, res_type, scale=True) for a batch [B, n].

    soxr takes the batch as channels [n, B] in one call; the length fix and energy scale are librosa's.
    """
    n_out = -(-audio.shape[1] // factor)
    quality = res_type.removeprefix("soxr_").upper()
    out = soxr.resample(np.ascontiguousarray(audio.T), factor, 1, quality=quality).T
    out = librosa.util.fix_length(out, size=n_out, axis=-1)
    return np.ascontiguousarray(out * np.sqrt(factor), dtype=audio.dtype)


class _CqtPlan:
    """librosa.cqt's octave plan for one spec: filter bases, FFT sizes, hops, built once."""

    def __init__(self, spec: CqtSpec, device: torch.device) -> None:
        if not spec.res_type.startswith("soxr"):
            raise ValueError(f"the fast CQT needs a soxr res_type, not {spec.res_type!r}")
        self.spec = spec
        self.device = device
        bpo = spec.bins_per_octave
        fmin = spec.fmin * 2.0 ** (spec.tuning / bpo)
        freqs = librosa.cqt_frequencies(spec.n_bins, fmin=fmin, bins_per_octave=bpo)
        alpha = librosa.filters._relative_bandwidth(freqs=freqs)  # what librosa.vqt uses
        lengths, cutoff = librosa.filters.wavelet_lengths(
            freqs=freqs, sr=spec.sample_rate, window=spec.window, filter_scale=spec.filter_scale, alpha=alpha
        )
        n_octaves = -(-spec.n_bins // bpo)
        n_filters = min(bpo, spec.n_bins)
        # Early downsampling, as librosa's __early_downsample_count.
        by_cutoff = max(0, int(np.ceil(np.log2(spec.sample_rate / 2 / cutoff)) - 1) - 1)
        twos = (spec.hop_length & -spec.hop_length).bit_length() - 1
        self.early_factor = 2 ** min(by_cutoff, max(0, twos - n_octaves + 1))
        sr = spec.sample_rate / self.early_factor
        hop = spec.hop_length // self.early_factor
        self.octaves = []  # (sparse basis [filters, bins] complex64, n_fft, hop, halve afterwards)
        my_sr = sr
        for i in range(n_octaves):
            rows = slice(-n_filters * (i + 1), -n_filters * i if i else None)
            basis, filter_lengths = librosa.filters.wavelet(
                freqs=freqs[rows], sr=my_sr, filter_scale=spec.filter_scale, norm=1, pad_fft=True,
                window=spec.window, alpha=alpha[rows],
            )
            n_fft = basis.shape[1]
            basis *= filter_lengths[:, None] / float(n_fft)
            # librosa's own FFT library (scipy.fft in librosa 0.11): its rounding, not numpy's.
            fft_basis = librosa.get_fftlib().fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
            fft_basis = librosa.util.sparsify_rows(fft_basis, quantile=spec.sparsity, dtype=np.complex64)
            fft_basis = (fft_basis * np.sqrt(sr / my_sr)).astype(np.complex64).tocsr()
            self.octaves.append((fft_basis, n_fft, hop, hop % 2 == 0))
            if hop % 2 == 0:
                hop //= 2
                my_sr /= 2
        final_lengths, _ = librosa.filters.wavelet_lengths(
            freqs=freqs, sr=sr, window=spec.window, filter_scale=spec.filter_scale, alpha=alpha
        )
        self.inv_sqrt_lengths = torch.from_numpy(1.0 / np.sqrt(final_lengths))

    def power(self, audio: np.ndarray) -> torch.Tensor:
        """|CQT|^2 of a batch float32 [B, n] as float64 [B, frames, bins]."""
        spec, device = self.spec, self.device
        if self.early_factor > 1:
            audio = _halve_rate(audio, self.early_factor, spec.res_type)
        responses = []  # top octave first, as librosa
        for basis, n_fft, hop, halve in self.octaves:
            # numpy pads as librosa does, also when a low octave is shorter than the reflection.
            padded = np.pad(audio, ((0, 0), (n_fft // 2, n_fft // 2)), mode=spec.pad_mode)
            frames = torch.from_numpy(padded).to(device, torch.float64).unfold(-1, n_fft, hop)  # window "ones"
            stft = torch.fft.rfft(frames).to(torch.complex64).cpu().numpy()  # [B, frames, bins]
            # scipy's sparse product, as librosa's: its float32 sums run in the same order, so that
            # quiet bins (down to the -120 dB floor) keep librosa's own rounding, not another one.
            columns = stft.reshape(-1, stft.shape[2]).T
            response = (basis @ columns).T.reshape(stft.shape[0], stft.shape[1], -1)
            responses.append(torch.from_numpy(np.ascontiguousarray(response)).to(device))
            if halve:
                audio = _halve_rate(audio, 2, spec.res_type)
        n_frames = min(r.shape[1] for r in responses)
        cqt = torch.cat([r[:, :n_frames] for r in reversed(responses)], dim=2)[:, :, -spec.n_bins :]
        power = torch.view_as_real(cqt).to(torch.float64).pow(2).sum(-1)
        return power * self.inv_sqrt_lengths.to(device) ** 2
