"""Numba kernels of the fast CPU path: window (in the frequency domain), power and mel in one pass.

They run right after each small group's FFT, while its spectra are still in cache, and release the
GIL so that one thread per core can run them. The window and the power are float64; the mel sums
are float32 (under 1e-5 dB; see fast.py).

The window is a convolution of the unwindowed spectrum X with the window's DFT: for the symmetric
cosine-sum windows (rectangular, Hann, Hamming, Blackman) five real taps W[-2..2] cover it,
X_w[k] = W0 X[k] + W1 (X[k-1] + X[k+1]) + W2 (X[k-2] + X[k+2]), with X extended past both ends by
conjugate symmetry. The loops are written out for 3 and 5 taps: a loop over taps does not vectorise
and was 4x slower.
"""

from __future__ import annotations

import numba
import numpy as np

N_TAPS = 5  # W[-2..2]
TILE = 8  # frames per mel tile: the mel sums run over TILE frames at once (one SIMD register of float32)


@numba.njit(nogil=True, cache=True)
def _edge_power(ri, taps, k):
    """|X_w[k]|^2 for any k (the slow general form, for the bins next to 0 and Nyquist)."""
    last = ri.shape[0] // 2 - 1
    re = 0.0
    im = 0.0
    for j in range(N_TAPS):
        i = k + 2 - j  # X_w[k] = sum_d W[d] X[k - d], taps[j] = W[j - 2]
        sign = 1.0
        if i < 0:
            i, sign = -i, -1.0  # X[-i] = conj X[i]
        elif i > last:
            i, sign = 2 * last - i, -1.0  # X[N/2 + i] = conj X[N/2 - i]
        re += taps[j] * ri[2 * i]
        im += sign * taps[j] * ri[2 * i + 1]
    return re * re + im * im


@numba.njit(nogil=True, cache=True)
def _windowed_power(ri, taps, power):
    """Power of the windowed spectrum of one frame; ``ri`` is its rfft as float64 (re, im) pairs."""
    k_n = ri.shape[0] // 2
    w0, w1, w2 = taps[2], taps[3], taps[4]
    edge = 1 if w2 == 0.0 else 2
    if edge == 1:
        for k in range(1, k_n - 1):
            re = w0 * ri[2 * k] + w1 * (ri[2 * k - 2] + ri[2 * k + 2])
            im = w0 * ri[2 * k + 1] + w1 * (ri[2 * k - 1] + ri[2 * k + 3])
            power[k] = re * re + im * im
    else:
        for k in range(2, k_n - 2):
            re = w0 * ri[2 * k] + w1 * (ri[2 * k - 2] + ri[2 * k + 2]) + w2 * (ri[2 * k - 4] + ri[2 * k + 4])
            im = w0 * ri[2 * k + 1] + w1 * (ri[2 * k - 1] + ri[2 * k + 3]) + w2 * (ri[2 * k - 3] + ri[2 * k + 5])
            power[k] = re * re + im * im
    for k in range(edge):
        power[k] = _edge_power(ri, taps, k)
        power[k_n - 1 - k] = _edge_power(ri, taps, k_n - 1 - k)


@numba.njit(nogil=True, cache=True)
def windowed_power(spectra, taps, out):
    """Power of each row of ``spectra`` (float64 [rows, 2K], re/im pairs) into ``out`` (float32 [rows, K])."""
    power = np.empty(out.shape[1])
    for r in range(spectra.shape[0]):
        _windowed_power(spectra[r], taps, power)
        for k in range(power.shape[0]):
            out[r, k] = power[k]


@numba.njit(nogil=True, cache=True)
def windowed_mel_power(spectra, taps, lo, hi, offsets, weights, out):
    """Mel power of each row of ``spectra`` (float64 [rows, 2K]) into ``out`` (float32 [rows, n_mels]).

    Filter m has weights ``weights[offsets[m]:offsets[m + 1]]`` on bins ``lo[m]:hi[m]`` (its support).
    """
    n_rows = spectra.shape[0]
    k_n = spectra.shape[1] // 2
    power = np.empty(k_n)
    tile = np.zeros((k_n, TILE), np.float32)  # power, bins x frames: the sums below vectorise over frames
    acc = np.empty(TILE, np.float32)
    for r0 in range(0, n_rows, TILE):
        n_t = min(TILE, n_rows - r0)
        for t in range(n_t):
            _windowed_power(spectra[r0 + t], taps, power)
            for k in range(k_n):
                tile[k, t] = power[k]
        for m in range(lo.shape[0]):
            acc[:] = 0.0
            base = offsets[m] - lo[m]
            for k in range(lo[m], hi[m]):
                w = weights[base + k]
                for t in range(TILE):
                    acc[t] += w * tile[k, t]
            for t in range(n_t):
                out[r0 + t, m] = acc[t]
