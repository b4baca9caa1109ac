"""build-suburmp's wall time against a bare ffmpeg decode of the same videos, and its peak RSS.

The decode is the floor: H.264 frames depend on each other, so the goal is a build within 1.3x of
decoding the same videos on the same cores, with a peak RSS under 1 GB that stays flat as the corpus
grows. (The build decodes somewhat less than the floor: it skips the non-reference frames that no
pair needs, about a fifth of the decode on camera-like B-frame encodes; the floor decodes everything.)

For each corpus size (demo corpora made by ``make-demo-urmp``, cached under --work):
  floor  = the faster of (a) one ffmpeg per video in turn, all threads, and (b) JOBS ffmpeg
           processes at once with one thread each, decoding to the null muxer;
  build  = ``cmav-data build-suburmp CORPUS OUT -j JOBS --quiet`` from a fresh process.
Peak RSS is the largest resident set of any process of the build (getrusage of the children).

    python benchmarks/bench_build.py                       # 4 and 8 pieces of 30 s at 1920x1080
    python benchmarks/bench_build.py --pieces 2 --seconds 10 --size 960x540   # quick look
    python benchmarks/bench_build.py --camera-noise   # videos that decode like camera footage

The demo's drawn frames are flat and decode at tens of times real time, far faster than URMP's camera
footage, so the floor they give is unrealistically low. ``--camera-noise`` re-encodes each demo video
with temporal grain at 12 Mbit/s, about URMP's average video bitrate (12 GB for 44 pieces, of which
roughly 3.5 GB are WAVs, over about 90 minutes), so that decoding costs about what it does on real
recordings; the build then reads the same videos.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section  # noqa: E402

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
CLI = [sys.executable, "-m", "cmav_data.cli"]


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of the largest process ``cmd`` and its descendants ran."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], check=True); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True).stdout
    seconds, kb = out.split()[-2:]
    return float(seconds), int(kb) / 1024


def decode_floor(videos: list[Path], jobs: int) -> tuple[float, str]:
    def decode(video: Path, threads: int) -> None:
        subprocess.run([FFMPEG, "-v", "error", "-threads", str(threads), "-i", str(video), "-map", "0:v:0",
                        "-f", "null", "-"], check=True)

    t = time.perf_counter()
    for v in videos:
        decode(v, 0)
    sequential = time.perf_counter() - t
    t = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda v: decode(v, 1), videos))
    parallel = time.perf_counter() - t
    return (sequential, "ffmpeg per video, all threads") if sequential <= parallel else (
        parallel, f"{jobs} ffmpeg at once, 1 thread each")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pieces", type=int, nargs="+", default=[4, 8], help="corpus sizes (pieces)")
    ap.add_argument("--seconds", default="30", help="piece length for make-demo-urmp")
    ap.add_argument("--size", default="1920x1080", help="video size (URMP's is 1920x1080)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cmav-bench-build"))
    ap.add_argument("--camera-noise", action="store_true", help="re-encode the videos with camera-like grain")
    ap.add_argument("--no-record", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()

    lines = [f"{'pieces':>6} {'pairs':>7} {'video s':>8} {'floor s':>8} {'build s':>8} {'ratio':>6} {'peak RSS MB':>12}"]
    floors = []
    for n in args.pieces:
        corpus = args.work / f"demo-{n}-{args.seconds}-{args.size}"
        if not (corpus / "demo.json").exists():
            subprocess.run([*CLI, "make-demo-urmp", str(corpus), "--pieces", str(n), "--seconds", args.seconds,
                            "--size", args.size, "-j", str(args.jobs), "--quiet", "--force"], check=True)
        if args.camera_noise:
            corpus = with_camera_noise(corpus, args.jobs)
        videos = sorted(corpus.glob("*/Vid_*.mp4"))
        floor, how = decode_floor(videos, args.jobs)
        floors.append(how)
        out = args.work / f"out-{n}"
        shutil.rmtree(out, ignore_errors=True)
        build_s, rss = run_measured([*CLI, "build-suburmp", str(corpus), str(out), "-j", str(args.jobs), "--quiet"])
        import json

        info = json.loads((out / "build.json").read_text())
        seconds_of_video = sum(p["video_duration"] for p in _inspect(corpus))
        lines.append(f"{n:>6} {info['n_pairs']:>7} {seconds_of_video:>8.1f} {floor:>8.2f} {build_s:>8.2f} "
                     f"{build_s / floor:>5.2f}x {rss:>12.0f}")
    body = "\n".join(lines) + "\n\nfloor: " + "; ".join(sorted(set(floors)))
    body += "\n(the build skips decoding the non-reference frames no pair needs; the floor decodes all)"
    body += "\n\n" + scaling(corpus, args.work)
    print(body)
    if not args.no_record:
        cmd = "python benchmarks/bench_build.py " + " ".join(sys.argv[1:])
        update_section("bench_build_camera_noise" if args.camera_noise else "bench_build", cmd.strip(), body)


def with_camera_noise(corpus: Path, jobs: int) -> Path:
    """A copy of ``corpus`` (audio and text hard-linked) whose videos carry temporal grain."""
    noisy = corpus.with_name(corpus.name + "-noisy")
    if (noisy / "demo.json").exists():
        return noisy
    shutil.rmtree(noisy, ignore_errors=True)
    shutil.copytree(corpus, noisy, copy_function=os.link, ignore=shutil.ignore_patterns("Vid_*.mp4", "demo.json"))

    def encode(video: Path) -> None:
        target = noisy / video.relative_to(corpus)
        subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(video), "-vf", "noise=alls=12:allf=t",
                        "-c:v", "libx264", "-preset", "veryfast", "-b:v", "12M", "-maxrate", "15M",
                        "-bufsize", "24M", "-pix_fmt", "yuv420p",
                        "-c:a", "copy", str(target)], check=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(encode, sorted(corpus.glob("*/Vid_*.mp4"))))
    shutil.copyfile(corpus / "demo.json", noisy / "demo.json")  # last: marks the copy complete
    return noisy


def scaling(corpus: Path, work: Path) -> str:
    """Wall time of the same build serially, on a 2-process pool and on a 2-worker local Dask cluster."""
    rows = [f"scaling on {corpus.name}:", f"{'executor':<22} {'build s':>8} {'speed-up':>9}"]
    base = None
    for label, flags in [("serial (-j 1)", ["-j", "1"]), ("process pool (-j 2)", ["-j", "2"]),
                         ("dask local (-j 2)", ["-j", "2", "--executor", "dask"])]:
        out = work / "out-scaling"
        shutil.rmtree(out, ignore_errors=True)
        seconds, _ = run_measured([*CLI, "build-suburmp", str(corpus), str(out), "--quiet", *flags])
        base = base or seconds
        rows.append(f"{label:<22} {seconds:>8.2f} {base / seconds:>8.2f}x")
    return "\n".join(rows)


def _inspect(corpus: Path) -> list[dict]:
    from cmav_data.corpora.urmp import inspect_urmp

    return [{"video_duration": p.video_duration or 0.0} for p in inspect_urmp(corpus, progress=False).pieces]


if __name__ == "__main__":
    main()
