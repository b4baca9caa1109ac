"""The assembled video of a demo piece: players side by side, posed from what they play.

Frame i shows time i * 1001/30000 s (29.97 fps, URMP's rate); there are ceil(seconds * 30000/1001)
frames so the video is as long as the audio within one frame. Player k is drawn exactly inside
``cmav_data.layout.player_box(W, H, n, k)``. Each player's pose at a frame comes from the note
sounding then (pitch, progress through the note) and the loudness of its own track around the
frame (RMS over one frame period, relative to the track's loud frames); a player with no sounding
note is at rest. Each player has its own ``Look`` (room, clothes, light; see ``players``). Frames
are composed from pre-drawn sprites and piped as raw RGB to the ffmpeg binary of imageio-ffmpeg:
H.264 (libx264, yuv420p) with the mix as an AAC track.
"""

from __future__ import annotations

import math
import os
import subprocess
from fractions import Fraction
from typing import Optional, Sequence

import numpy as np

from cmav_data.atomic import atomic_path
from cmav_data.demo.errors import DemoError
from cmav_data.demo.players import LOUDNESS_LEVELS, PITCH_LEVELS, STROKE_LEVELS, Look, PlayerSprites, Pose
from cmav_data.demo.render import SAMPLE_RATE
from cmav_data.demo.scores import Note
from cmav_data.instruments import instrument
from cmav_data.layout import player_box

FPS = Fraction(30000, 1001)


class VideoError(DemoError):
    """ffmpeg failed to encode a video."""


def frame_count(seconds: float) -> int:
    return math.ceil(seconds * FPS)


def poses(notes: Sequence[Note], audio: np.ndarray, code: str, n_frames: int) -> list[Optional[Pose]]:
    """The pose of one player at every frame (None when no note sounds)."""
    inst = instrument(code)
    times = np.arange(n_frames) / float(FPS)
    half = round(SAMPLE_RATE / float(FPS) / 2)
    centres = np.round(times * SAMPLE_RATE).astype(int)
    padded = np.pad(audio**2, (half, half))
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    rms = np.sqrt((cumulative[centres + 2 * half] - cumulative[centres]) / (2 * half))
    onsets = np.array([n.onset for n in notes])
    out: list[Optional[Pose]] = [None] * n_frames
    sounding = np.zeros(n_frames, dtype=bool)
    index = np.searchsorted(onsets, times, side="right") - 1  # last note begun by each frame
    for f in range(n_frames):
        k = index[f]
        sounding[f] = k >= 0 and times[f] < notes[k].onset + notes[k].duration
    reference = float(np.percentile(rms[sounding], 90)) if sounding.any() else 1.0
    for f in np.flatnonzero(sounding):
        note = notes[index[f]]
        pitch = (note.midi - inst.low_midi) / max(1, inst.high_midi - inst.low_midi)
        progress = (times[f] - note.onset) / note.duration
        stroke = min(STROKE_LEVELS - 1, int(progress * STROKE_LEVELS))
        if index[f] % 2:  # alternate bow direction (down-bow, up-bow) from note to note
            stroke = STROKE_LEVELS - 1 - stroke
        out[f] = Pose(
            pitch=min(PITCH_LEVELS - 1, int(pitch * PITCH_LEVELS)),
            loudness=int(np.clip(math.ceil(rms[f] / reference * LOUDNESS_LEVELS), 1, LOUDNESS_LEVELS)),
            stroke=stroke,
        )
    return out


def frames(parts: Sequence[Sequence[Note]], tracks: Sequence[np.ndarray], codes: Sequence[str],
           looks: Sequence[Look], size: tuple[int, int], n_frames: int):
    """Yield the RGB frames, (H, W, 3) uint8, composed from sprites by numpy slicing."""
    width, height = size
    n = len(codes)
    boxes = [player_box(width, height, n, k + 1) for k in range(n)]
    sprites = [PlayerSprites(code, look, right - left, bottom - top)
               for code, look, (left, top, right, bottom) in zip(codes, looks, boxes)]
    pose_tracks = [poses(notes, audio, code, n_frames) for notes, audio, code in zip(parts, tracks, codes)]
    frame = np.empty((height, width, 3), dtype=np.uint8)
    for f in range(n_frames):
        for (left, top, right, bottom), sprite, track in zip(boxes, sprites, pose_tracks):
            frame[top:bottom, left:right] = sprite(track[f])
        yield frame


def encode(path: str | os.PathLike, frame_iter, size: tuple[int, int], audio_path: str | os.PathLike | None) -> None:
    """Write an H.264 MP4 from RGB frames (and an AAC track from ``audio_path``) atomically."""
    import imageio_ffmpeg

    width, height = size
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", f"{FPS.numerator}/{FPS.denominator}",
        "-i", "-",
    ]
    if audio_path is not None:
        cmd += ["-i", os.fspath(audio_path), "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "128k"]
    # One encoder thread: pieces are encoded in parallel already, and output must not depend on threads.
    cmd += [
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-pix_fmt", "yuv420p", "-threads", "1",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags", "+bitexact", "-movflags", "+faststart",
        "-f", "mp4",
    ]
    with atomic_path(path, suffix=".mp4") as tmp:
        proc = subprocess.Popen(cmd + [os.fspath(tmp)], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for frame in frame_iter:
                proc.stdin.write(frame.tobytes())
        except BrokenPipeError:
            pass  # ffmpeg died; its error is reported below
        finally:
            proc.stdin.close()
            err = proc.stderr.read().decode(errors="replace")
            proc.wait()
        if proc.returncode != 0:
            raise VideoError(f"{path}: ffmpeg failed ({proc.returncode}): {err.strip()[-500:]}")
