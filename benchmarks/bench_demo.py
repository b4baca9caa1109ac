"""make-demo-urmp's wall time against the H.264 encode it cannot avoid, and against the 2-minute goal.

Goal: the default corpus (16 pieces of 20-40 s, 960x540, 29.97 fps) in under 2 minutes on 2 cores.
Reference measured in the same run: encoding the same number of frames (a fixed picture of the
same size, same ffmpeg settings, JOBS encoders at once) with nothing else to do: the floor of
any generator that writes these videos. The ratio shows what scores, sound and drawing add.

    python benchmarks/bench_demo.py                 # the default corpus, -j 2
    python benchmarks/bench_demo.py --pieces 4 --seconds 10   # quick look
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section  # noqa: E402

from cmav_data.demo import DemoOptions, make_demo_urmp, parse_seconds, parse_size  # noqa: E402
from cmav_data.demo.video import encode  # noqa: E402

GOAL_SECONDS = 120.0


def encode_floor(n_frames: list[int], size: tuple[int, int], jobs: int, work: Path) -> float:
    """Seconds to encode videos of ``n_frames`` frames of one fixed picture, ``jobs`` at once."""
    width, height = size
    picture = (np.arange(height * width * 3) % 251).astype(np.uint8).reshape(height, width, 3)

    def one(k_n):
        k, n = k_n
        encode(work / f"floor{k}.mp4", (picture for _ in range(n)), size, None)

    t = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, enumerate(n_frames)))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pieces", type=int, default=DemoOptions.pieces)
    ap.add_argument("--seconds", default="20-40")
    ap.add_argument("--size", default="960x540")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cmav-bench-demo"))
    ap.add_argument("--no-record", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()

    options = DemoOptions(pieces=args.pieces, seconds=parse_seconds(args.seconds), size=parse_size(args.size))
    shutil.rmtree(args.work, ignore_errors=True)
    corpus = args.work / "urmp"
    t = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        make_demo_urmp(corpus, options, executor=pool, progress=False)
    demo_s = time.perf_counter() - t

    import av

    n_frames = []
    for video in sorted(corpus.glob("*/Vid_*.mp4")):
        with av.open(str(video)) as c:
            n_frames.append(c.streams.video[0].frames)
    floor_s = encode_floor(n_frames, options.size, args.jobs, args.work)
    video_s = sum(n_frames) * 1001 / 30000
    body = (
        f"{len(n_frames)} pieces, {video_s:.0f} s of video ({sum(n_frames)} frames at {args.size}), -j {args.jobs}\n"
        f"make-demo-urmp        {demo_s:7.1f} s   {demo_s / floor_s:5.2f}x encode floor ({floor_s:.1f} s)   "
        f"{demo_s / GOAL_SECONDS:5.2f}x the {GOAL_SECONDS:.0f} s goal"
    )
    print(body)
    if not args.no_record:
        update_section("bench_demo", ("python benchmarks/bench_demo.py " + " ".join(sys.argv[1:])).strip(), body)
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
