"""Feature extraction speed: librosa per chunk vs the fast batched path vs a bare FFT floor.

Run:  .venv/bin/python benchmarks/bench_features.py [--chunks 512] [--repeats 5]

All measurements in one run on the same 0.5 s chunks (44.1 kHz, 22,050 samples): real recordings
from ../shared/samples cut with a 0.1 s hop when present, harmonic tones otherwise. Reported:
chunks per second (median of ``--repeats`` runs; librosa, the fast path and the FFT floors are
alternated, so all see the same load on shared cores), the speed-up of the fast path over librosa
per chunk (the fast path runs one batch per core in threads, torch at one thread each, as fast.py
advises; its default FFT engine, FFTW when pyFFTW is installed, and also scipy's pocketfft for the
STFT family), its ratio to the FFT floor (scipy.fft.rfft of the same windowed frames on all cores,
float32 as the goal states, and float64 as librosa and the fast path compute it), and the max abs
difference from librosa. The Markdown table replaces this script's section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import soundfile as sf
import torch

from cmav_data.atomic import write_text
from cmav_data.features.fast import FastFeatures, default_fft
from cmav_data.features.reference import reference_chunk, reference_features
from cmav_data.features.specs import make_spec

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "samples"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
START, END = "<!-- bench_features:begin -->", "<!-- bench_features:end -->"
RATE, FRAMES, HOP = 44100, 22050, 4410
GOALS = {"stft": "-", "lms": ">= 12x, <= 2x floor, <= 1e-3 dB", "mfcc": ">= 12x, <= 2x floor", "cqt": ">= 40x"}


def load_chunks(n: int) -> tuple[np.ndarray, str]:
    chunks = []
    if SAMPLES.is_dir():
        for path in sorted(SAMPLES.glob("*.wav")):
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
            if rate == RATE:
                audio = audio.mean(axis=1)
                chunks += [audio[s : s + FRAMES] for s in range(0, len(audio) - FRAMES + 1, HOP)]
    source = f"{len(chunks)} real chunks from ../shared/samples" if chunks else "harmonic tones"
    rng = np.random.default_rng(0)
    t = np.arange(FRAMES) / RATE
    while len(chunks) < n:  # top up with tones (or repeat nothing: tones are cheap)
        f0 = rng.uniform(100, 800)
        chunks.append(sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 10)).astype(np.float32) * 0.1)
    order = rng.permutation(len(chunks))[:n]
    return np.stack([chunks[i] for i in order]), source


def median_rates(runs: dict[str, tuple[Callable[[], object], int]], repeats: int) -> dict[str, float]:
    """Chunks per second of each ``name: (fn, chunks)``, timed in turn (alternated) and the median kept.

    The cores are shared with other work: alternating puts every variant under the same load.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn, _ in runs.values():
        fn()  # warm-up (filterbanks, buffers, numba, FFT plans)
    for _ in range(repeats):
        for name, (fn, _) in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: n / float(np.median(times[name])) for name, (_, n) in runs.items()}


def windowed_frames(audio: np.ndarray, dtype: type) -> np.ndarray:
    """The fast path's windowed frames [B, frames, n_fft], the FFT floor's input."""
    spec = make_spec("lms")
    padded = np.pad(audio, ((0, 0), (spec.n_fft // 2, spec.n_fft // 2)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, spec.n_fft, axis=1)[:, :: spec.hop_length]
    window = scipy.signal.get_window(spec.window, spec.n_fft).astype(dtype)
    return (frames * window).astype(dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=512, help="chunks in the fast and floor runs")
    parser.add_argument("--reference-chunks", type=int, default=64, help="chunks timed with librosa")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each variant (median kept)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    audio, source = load_chunks(args.chunks)
    subset = audio[: args.reference_chunks]
    frames32, frames64 = windowed_frames(audio, np.float32), windowed_frames(audio, np.float64)
    rows = []
    torch.set_num_threads(1)
    pool = ThreadPoolExecutor(os.cpu_count())
    for kind in ("stft", "lms", "mfcc", "cqt"):
        spec = make_spec(kind)
        fast = FastFeatures(spec)
        runs = {
            "librosa": (lambda: [reference_chunk(c, spec) for c in subset], len(subset)),
            "fast": (lambda: fast(audio, pool), len(audio)),
            "floor32": (lambda: scipy.fft.rfft(frames32, axis=-1, workers=-1), len(audio)),
            "floor64": (lambda: scipy.fft.rfft(frames64, axis=-1, workers=-1), len(audio)),
        }
        if kind != "cqt" and fast.fft != "pocketfft":
            pocketfft = FastFeatures(spec, fft="pocketfft")
            runs["pocketfft"] = (lambda: pocketfft(audio, pool), len(audio))
        rates = median_rates(runs, args.repeats)
        diff = float(np.abs(fast(subset) - reference_features(subset, spec)).max())
        rows.append((kind, rates, diff))
        print(f"{kind}: librosa {rates['librosa']:.0f}/s, fast {rates['fast']:.0f}/s "
              f"({rates['fast'] / rates['librosa']:.1f}x), f32 floor {rates['floor32']:.0f}/s "
              f"({rates['floor32'] / rates['fast']:.2f}x of fast), max abs diff {diff:.2g}", flush=True)
    pool.shutdown()
    command = "python benchmarks/bench_features.py " + " ".join(sys.argv[1:])
    lines = [
        START, "## Feature extraction (benchmarks/bench_features.py)", "",
        f"Command: `{command.strip()}`; {len(audio)} chunks ({source}), librosa timed on "
        f"{len(subset)}; median of {args.repeats} runs, librosa, fast path and FFT floors alternated; "
        f"{os.cpu_count()} CPUs shared with other work, torch {torch.__version__} (fast path: "
        f"{os.cpu_count()} batches in parallel threads, 1 torch thread each; FFT engine "
        f"{default_fft()}), librosa {librosa.__version__}, {platform.machine()}.", "",
        "FFT floor: scipy.fft.rfft of the same windowed frames on all cores, float32 as the goal states and "
        "float64 as librosa and the fast path compute it (see fast.py), timed beside each row.", "",
        "| kind | librosa per chunk (chunks/s) | fast batched (chunks/s) | speed-up | f32 floor (chunks/s) "
        "| fast / f32 floor | fast / f64 floor | max abs diff vs librosa | goal | pocketfft engine (chunks/s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, rates, diff in rows:
        unit = "" if kind == "mfcc" else " dB"
        fast_rate = rates["fast"]
        pocketfft = (f"{rates['pocketfft']:.0f} ({rates['pocketfft'] / rates['librosa']:.1f}x)"
                     if "pocketfft" in rates else "-")
        lines.append(f"| {kind} | {rates['librosa']:.0f} | {fast_rate:.0f} | {fast_rate / rates['librosa']:.1f}x "
                     f"| {rates['floor32']:.0f} | {rates['floor32'] / fast_rate:.2f}x slower "
                     f"| {rates['floor64'] / fast_rate:.2f}x slower | {diff:.2g}{unit} | {GOALS[kind]} | {pocketfft} |")
    lines.append(END)
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
        if START in text:
            head, rest = text.split(START, 1)
            text = head + section + rest.split(END, 1)[1].lstrip("\n")
        else:
            text = text.rstrip("\n") + "\n\n" + section
        write_text(RESULTS, text)


if __name__ == "__main__":
    main()
