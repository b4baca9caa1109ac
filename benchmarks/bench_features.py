"""Feature extraction speed: librosa per chunk vs the fast batched path vs a bare FFT floor.

Run:  .venv/bin/python benchmarks/bench_features.py [--chunks 512] [--repeats 3]

All measurements in one run on the same 0.5 s chunks (44.1 kHz, 22,050 samples): real recordings
from ../shared/samples cut with a 0.1 s hop when present, harmonic tones otherwise. Reported:
chunks per second (best of ``--repeats``), the speed-up of the fast path over librosa per chunk,
its ratio to the FFT floor (scipy.fft.rfft of the same windowed frames on all cores, float32 as
the goal states, and float64 as librosa and the fast path compute it), and the max abs difference
from librosa. The Markdown table replaces this script's section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import soundfile as sf
import torch

from cmav_data.atomic import write_text
from cmav_data.features.fast import FastFeatures
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


def best_rate(fn, n: int, repeats: int) -> float:
    fn()  # warm-up (filterbanks, buffers, numba, FFT plans)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / min(times)


def fft_floor(audio: np.ndarray, dtype: type, repeats: int) -> float:
    spec = make_spec("lms")
    padded = np.pad(audio, ((0, 0), (spec.n_fft // 2, spec.n_fft // 2)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, spec.n_fft, axis=1)[:, :: spec.hop_length]
    window = scipy.signal.get_window(spec.window, spec.n_fft).astype(dtype)
    windowed = (frames * window).astype(dtype)
    return best_rate(lambda: scipy.fft.rfft(windowed, axis=-1, workers=-1), len(audio), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=512, help="chunks in the fast and floor runs")
    parser.add_argument("--reference-chunks", type=int, default=64, help="chunks timed with librosa")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    audio, source = load_chunks(args.chunks)
    subset = audio[: args.reference_chunks]
    floor32 = fft_floor(audio, np.float32, args.repeats)
    floor64 = fft_floor(audio, np.float64, args.repeats)
    rows = []
    for kind in ("stft", "lms", "mfcc", "cqt"):
        spec = make_spec(kind)
        fast = FastFeatures(spec)
        librosa_rate = best_rate(lambda: [reference_chunk(c, spec) for c in subset], len(subset), args.repeats)
        fast_rate = best_rate(lambda: fast(audio), len(audio), args.repeats)
        diff = float(np.abs(fast(subset) - reference_features(subset, spec)).max())
        rows.append((kind, librosa_rate, fast_rate, diff))
        print(f"{kind}: librosa {librosa_rate:.0f}/s, fast {fast_rate:.0f}/s ({fast_rate / librosa_rate:.1f}x), "
              f"max abs diff {diff:.2g}", flush=True)
    command = "python benchmarks/bench_features.py " + " ".join(sys.argv[1:])
    lines = [
        START, "## Feature extraction (benchmarks/bench_features.py)", "",
        f"Command: `{command.strip()}`; {len(audio)} chunks ({source}), librosa timed on "
        f"{len(subset)}; best of {args.repeats}; {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), librosa {librosa.__version__}, {platform.machine()}.", "",
        f"FFT floor (scipy.fft.rfft of the same windowed frames, all cores): float32 {floor32:.0f} chunks/s, "
        f"float64 {floor64:.0f} chunks/s. The fast path's FFT is float64 like librosa's (see fast.py).", "",
        "| kind | librosa per chunk (chunks/s) | fast batched (chunks/s) | speed-up | fast / f32 floor "
        "| fast / f64 floor | max abs diff vs librosa | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, librosa_rate, fast_rate, diff in rows:
        unit = "" if kind == "mfcc" else " dB"
        lines.append(f"| {kind} | {librosa_rate:.0f} | {fast_rate:.0f} | {fast_rate / librosa_rate:.1f}x "
                     f"| {floor32 / fast_rate:.2f}x slower | {floor64 / fast_rate:.2f}x slower "
                     f"| {diff:.2g}{unit} | {GOALS[kind]} |")
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
