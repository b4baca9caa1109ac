"""`cmav-bench run --suite fast` against its goals: under 10 minutes on 2 CPU cores, and
generated-image accuracy well above chance on the demo Sub-URMP.

References measured in the same run: chance accuracy (1 / classes in the validation split), the
image classifier's accuracy on real validation images (the ceiling of the paper's metric), and the
600 s budget. Trains from scratch in a fresh folder (no resume).

    python benchmarks/bench_models.py                        # demo/suburmp, fast suite
    python benchmarks/bench_models.py --data /tmp/suburmp --no-record
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section  # noqa: E402

from cmav_data.manifest import read_manifest  # noqa: E402
from cmav_data.parallel import executor_for  # noqa: E402
from cmav_models.bench import SUITES, VARIANTS, run_bench  # noqa: E402

BUDGET_SECONDS = 600.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("demo/suburmp"))
    ap.add_argument("--suite", default="fast", choices=sorted(SUITES))
    ap.add_argument("--work", type=Path, default=Path("/tmp/cmav-bench-models"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="decoding processes")
    ap.add_argument("--no-record", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    shutil.rmtree(args.work, ignore_errors=True)
    t = time.perf_counter()
    with executor_for(args.jobs) as executor:
        result = run_bench(args.data, args.work, SUITES[args.suite], device="cpu", executor=executor, progress=False)
    wall = time.perf_counter() - t
    metrics = result.metrics
    manifest = read_manifest(args.data / "manifest.parquet", columns=["split", "class_name"]).to_pylist()
    n_classes = len({r["class_name"] for r in manifest if r["split"] == "validation"})
    chance = 1 / n_classes
    real_image = metrics["image classifier (real)"]["accuracy"]
    lines = [f"suite {args.suite}, {args.threads} torch thread(s), -j {args.jobs}, data {args.data}",
             f"wall time            {wall:7.1f} s   {wall / BUDGET_SECONDS:5.2f}x the {BUDGET_SECONDS:.0f} s budget",
             f"chance accuracy      {chance:7.3f}   ({n_classes} classes)",
             f"image clf, real      {real_image:7.3f}   {real_image / chance:5.1f}x chance",
             f"sound clf, real      {metrics['sound classifier (real)']['accuracy']:7.3f}"]
    for name in VARIANTS:
        row = metrics[name]
        ratio = f"{row['accuracy'] / chance:5.1f}x chance"
        if VARIANTS[name].direction == "s2i":
            ratio += f", {row['accuracy'] / real_image:4.2f}x real"
        pose = "" if row.get("pose_r") is None else f"   pose r {row['pose_r']:.2f}"
        lines.append(f"{name:<6} generated   {row['accuracy']:7.3f}   {ratio}   FD {row['frechet']:.1f}{pose}")
    body = "\n".join(lines)
    print(body)
    if not args.no_record:
        update_section("bench_models", ("python benchmarks/bench_models.py " + " ".join(sys.argv[1:])).strip(), body)


if __name__ == "__main__":
    main()
