"""Fast batched features: PyTorch on CPU (or GPU when asked), same numbers as librosa within tolerance.

Measured on this machine (benchmarks/bench_features.py), what makes a torch log-mel fast:
- batches of ~16 chunks with preallocated buffers reused across batches (fresh memory fills at only
  a few GB/s here; very large batches are 2-3x slower);
- one batch per core (threads, torch at one thread each) rather than each op split across cores:
  on busy shared cores, an op's threads wait for one another and 2 torch threads ran up to 6x
  slower than 1;
- power as re^2 + im^2 (``abs()`` of a complex tensor costs up to half the FFT);
- the signal widened to float64 once, while padding, not frame by frame (frames overlap 4x);
  float64 frames times a float64 window avoid a mixed-type product 4x slower than the window itself;
- power narrowed to float32 once squared: the mel product, log and top_db in float32 cost a
  quarter of float64 and add under 1e-5 dB (the DCT of MFCC stays float64: coefficients reach +-500);
- the mel filterbank applied band by band: each group of mel filters touches only a contiguous
  range of FFT bins, so a dense [n_mels, 1 + n_fft/2] product (98% zeros) is avoided;
- ``top_db`` against each chunk's own maximum (never the batch's).

Precision: the FFT runs in float64, as in librosa (its float64 window promotes float32 frames).
A float32 FFT is about 1.8x faster but its rounding noise reaches 1.6e-3 dB on bins near the
-80 dB floor, above the 1e-3 dB parity goal. Recomputing only the frames at risk in float64 does
not pay: in 93% of the real recordings' frames some mel value lies more than 80 dB below the
frame's energy yet above the top_db floor, where float32 noise exceeds 2e-4 dB.

Padding and windows follow librosa exactly: ``center=True`` pads with zeros (``pad_mode="constant"``),
the window is scipy's periodic window (librosa ``fftbins=True``), mel filters are librosa's.

CQT: librosa's own algorithm (``librosa.cqt``: early downsampling, then per octave a rectangular
STFT times a sparse frequency-domain filter basis, then halving the rate with soxr), with the filter
bases built once instead of on every call, the STFTs and products batched in torch, and soxr
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

from cmav_data.features.specs import CqtSpec, FeatureSpec, LmsSpec, MfccSpec, normalize_features

POWER_DTYPE = torch.float32  # power, mel and dB (after the float64 FFT): see the module docstring
BATCH_SIZE = 16  # chunks per batch: measured best here (8-16; 64 is 2x slower: memory traffic)
MEL_GROUP = 16  # mel filters per band-limited product


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


class FastFeatures:
    """Callable computing ``spec``'s features for a batch: float32 [B, n_samples] -> [B, rows, frames].

    Holds the window, filterbanks and reusable buffers; build one per spec and call it many times.
    """

    def __init__(self, spec: FeatureSpec, device: str | torch.device = "cpu") -> None:
        self.spec = spec
        self.device = torch.device(device)
        self._buffers: dict[tuple, torch.Tensor] = {}
        if isinstance(spec, CqtSpec):
            self.cqt = _CqtPlan(spec)
            return
        window = scipy.signal.get_window(spec.window, spec.n_fft, fftbins=True)
        self.window = torch.from_numpy(window).to(self.device)
        if isinstance(spec, LmsSpec):
            mel = librosa.filters.mel(
                sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin,
                fmax=spec.fmax, htk=spec.htk, norm=spec.mel_norm, dtype=np.float64,
            )
            self.mel_bands = [(r, b, w.to(self.device, POWER_DTYPE)) for r, b, w in _mel_bands(mel, MEL_GROUP)]
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
                if isinstance(self.spec, CqtSpec):
                    power = self.cqt.power(batch, self.device)
                else:
                    power = self._stft_family_power(torch.from_numpy(batch).to(self.device))
                out[start : start + BATCH_SIZE] = self._finish(power).cpu().numpy()

        starts = range(0, len(audio), BATCH_SIZE)
        list(executor.map(compute, starts) if executor else map(compute, starts))
        return normalize_features(out, self.spec)

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A buffer reused across batches, one per thread (batches may run in parallel)."""
        key = (threading.get_ident(), name, shape, dtype)
        if key not in self._buffers:
            self._buffers[key] = torch.empty(shape, dtype=dtype, device=self.device)
        return self._buffers[key]

    def _power(self, audio: torch.Tensor) -> torch.Tensor:
        """Power spectrogram as float32 [B, frames, bins] (frames-major, so the mel product is contiguous).

        The FFT is float64 (see the module docstring); the signal is widened once while padding (4x fewer
        values than the overlapping frames) and the power is narrowed to float32 once squared.
        """
        spec = self.spec
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
        power = self._buffer("power64", complex_shape, torch.float64)
        torch.mul(ri[..., 0], ri[..., 0], out=power)
        power.addcmul_(ri[..., 1], ri[..., 1])
        return self._buffer("power", complex_shape, POWER_DTYPE).copy_(power)

    def _to_db(self, power: torch.Tensor) -> torch.Tensor:
        """10 log10(max(amin, S) / ref) in place, floored at top_db below each chunk's maximum."""
        spec = self.spec
        if spec.db_ref is None:
            offset = 10.0 * torch.log10(power.amax(dim=(1, 2), keepdim=True).clamp(min=spec.amin))
        else:
            offset = 10.0 * float(np.log10(max(spec.amin, spec.db_ref)))
        db = power.clamp_(min=spec.amin).log10_().mul_(10.0).sub_(offset)
        if spec.top_db is not None:
            db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - spec.top_db, out=db)
        return db

    def _stft_family_power(self, audio: torch.Tensor) -> torch.Tensor:
        """Power STFT, or mel power for LMS / MFCC, of one batch as [B, frames, rows]."""
        spec = self.spec
        power = self._power(audio)
        if isinstance(spec, LmsSpec):
            batch, n_frames, _ = power.shape
            mel = self._buffer("mel", (batch, n_frames, spec.n_mels), POWER_DTYPE)
            for rows, bins, weights in self.mel_bands:
                torch.matmul(power[:, :, bins], weights, out=mel[:, :, rows])
            power = mel
        return power

    def _finish(self, power: torch.Tensor) -> torch.Tensor:
        """dB (and DCT for MFCC) of power [B, frames, rows], returned as [B, rows, frames]."""
        db = self._to_db(power)
        if isinstance(self.spec, MfccSpec):
            db = db.double() @ self.dct_t  # float64 sums: coefficients reach +-500, tolerance 1e-3
        return db.transpose(1, 2)


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

    def __init__(self, spec: CqtSpec) -> None:
        if not spec.res_type.startswith("soxr"):
            raise ValueError(f"the fast CQT needs a soxr res_type, not {spec.res_type!r}")
        self.spec = spec
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
        self.octaves = []  # (basis^T [bins, filters] complex64, n_fft, hop, halve afterwards)
        my_sr = sr
        for i in range(n_octaves):
            rows = slice(-n_filters * (i + 1), -n_filters * i if i else None)
            basis, filter_lengths = librosa.filters.wavelet(
                freqs=freqs[rows], sr=my_sr, filter_scale=spec.filter_scale, norm=1, pad_fft=True,
                window=spec.window, alpha=alpha[rows],
            )
            n_fft = basis.shape[1]
            basis *= filter_lengths[:, None] / float(n_fft)
            fft_basis = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
            fft_basis = librosa.util.sparsify_rows(fft_basis, quantile=spec.sparsity, dtype=np.complex64)
            dense = fft_basis.toarray() * np.sqrt(sr / my_sr)
            self.octaves.append((torch.from_numpy(np.ascontiguousarray(dense.T, dtype=np.complex64)),
                                 n_fft, hop, hop % 2 == 0))
            if hop % 2 == 0:
                hop //= 2
                my_sr /= 2
        final_lengths, _ = librosa.filters.wavelet_lengths(
            freqs=freqs, sr=sr, window=spec.window, filter_scale=spec.filter_scale, alpha=alpha
        )
        self.inv_sqrt_lengths = torch.from_numpy(1.0 / np.sqrt(final_lengths))

    def power(self, audio: np.ndarray, device: torch.device) -> torch.Tensor:
        """|CQT|^2 of a batch float32 [B, n] as float64 [B, frames, bins]."""
        spec = self.spec
        if self.early_factor > 1:
            audio = _halve_rate(audio, self.early_factor, spec.res_type)
        responses = []  # top octave first, as librosa
        for basis_t, n_fft, hop, halve in self.octaves:
            # numpy pads as librosa does, also when a low octave is shorter than the reflection.
            padded = np.pad(audio, ((0, 0), (n_fft // 2, n_fft // 2)), mode=spec.pad_mode)
            frames = torch.from_numpy(padded).to(device, torch.float64).unfold(-1, n_fft, hop)  # window "ones"
            stft = torch.fft.rfft(frames).to(torch.complex64)
            responses.append(stft @ basis_t.to(device))
            if halve:
                audio = _halve_rate(audio, 2, spec.res_type)
        n_frames = min(r.shape[1] for r in responses)
        cqt = torch.cat([r[:, :n_frames] for r in reversed(responses)], dim=2)[:, :, -spec.n_bins :]
        power = torch.view_as_real(cqt).to(torch.float64).pow(2).sum(-1)
        return power * self.inv_sqrt_lengths.to(device) ** 2
