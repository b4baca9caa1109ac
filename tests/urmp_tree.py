"""Small hand-made URMP trees for reader tests: real WAVs, real MIDI, real H.264 made by ffmpeg."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pretty_midi
import soundfile as sf

from cmav_data.corpora.urmp import parse_folder


def write_tone(path: Path, seconds: float, freq: float = 440.0, sr: int = 48_000, data: np.ndarray | None = None) -> None:
    if data is None:
        t = np.arange(int(seconds * sr)) / sr
        data = 0.3 * np.sin(2 * np.pi * freq * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, subtype="PCM_24")


FPS = Fraction(30000, 1001)


def frame_colour(k: int) -> tuple[int, int, int]:
    """The flat colour of frame k in coded videos: k can be read back from a decoded frame."""
    return (k % 16) * 16 + 8, (k // 16 % 16) * 16 + 8, 128


def decode_frame_number(rgb: np.ndarray) -> int:
    r, g = (rgb[..., :2].reshape(-1, 2).mean(axis=0) - 8) / 16
    return int(round(g)) * 16 + int(round(r))


def write_video(path: Path, seconds: float, size: str = "64x36") -> None:
    """H.264 at 29.97 fps whose frame k is filled with ``frame_colour(k)``.

    Near-lossless (the colour codes, 16 levels apart, read back exactly), with non-reference
    B-frames between the references, as camera encodes have: builds skip decoding those they do
    not need, and this makes the tests go through that path.
    """
    w, h = map(int, size.split("x"))
    n = int(seconds * FPS + Fraction(1, 2))
    frames = np.empty((n, h, w, 3), np.uint8)
    for k in range(n):
        frames[k] = frame_colour(k)
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", size, "-r", "30000/1001", "-i", "-", "-c:v", "libx264", "-crf", "10", "-bf", "3", "-x264-params", "b-pyramid=none", "-pix_fmt", "yuv444p",
         str(path)],
        input=frames.tobytes(), check=True,
    )


def make_piece(root: Path, folder: str, seconds: float = 1.0, file_codes: dict[int, str] | None = None,
               video_seconds: float | None = None, size: str = "64x36") -> Path:
    """A complete piece folder with tones of different pitch per part."""
    number, name, codes = parse_folder(folder)
    stem = f"{number:02d}_{name}"
    path = root / folder
    path.mkdir(parents=True)
    for k, code in enumerate(codes, 1):
        fc = (file_codes or {}).get(k, code)
        freq = 110.0 * k + number  # every track of the tree differs
        write_tone(path / f"AuSep_{k}_{fc}_{stem}.wav", seconds, freq=freq)
        (path / f"Notes_{k}_{fc}_{stem}.txt").write_text(f"0.0000000\t{freq:.3f}\t{seconds:.7f}\n")
        (path / f"F0s_{k}_{fc}_{stem}.txt").write_text(f"0.0000000\t{freq:.3f}\n")
    write_tone(path / f"AuMix_{folder}.wav", seconds)
    pretty_midi.PrettyMIDI().write(str(path / f"Sco_{folder}.mid"))
    write_video(path / f"Vid_{folder}.mp4", video_seconds if video_seconds is not None else seconds, size)
    return path


def write_index(root: Path, folders: list[str] | None = None) -> None:
    """The tree's own cmav_index.csv, listing ``folders`` (default: every piece folder in it)."""
    if folders is None:
        folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    lines = ["folder,piece,name,part,instrument,file_code"]
    for folder in folders:
        num, name, *codes = folder.split("_")
        lines += [f"{folder},{int(num)},{name},{k},{c},{c}" for k, c in enumerate(codes, 1)]
    (root / "cmav_index.csv").write_text("\n".join(lines) + "\n")
