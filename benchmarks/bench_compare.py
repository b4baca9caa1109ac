"""compare-features, fast profile, on a built dataset: the representation tables with 3 seeds per cell.

Run:  .venv/bin/python benchmarks/bench_compare.py demo/suburmp [--out runs/compare-fast] [-j 2]

Runs ``cmav_models.compare_features`` with ``--fast`` (4 kinds x 4 depths x 2 poolings x 3 seeds =
96 models; 3 epochs, 60 fit / 30 selection / 30 held-out pairs per class, 8 channels) and writes
both tables (selection accuracy, mean ± std and 95% CI over seeds, best or tied cells, the chosen
cell on the held-out split) with the wall time, its ratio to the profile's 10-minute budget, and
how many cells were trained or reused, to this script's section of benchmarks/RESULTS.md. A rerun
with the same --out reuses the cells (wall time then measures only extraction checks and scoring);
give a fresh --out for a timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import update_section  # noqa: E402

from cmav_data.parallel import executor_for  # noqa: E402
from cmav_models.compare_features import FAST_PROFILE, CompareConfig, compare_features  # noqa: E402

BUDGET_SECONDS = 600.0  # the fast profile's goal: a few minutes, under 10, on 2 cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="a built Sub-URMP dataset (manifest.parquet)")
    parser.add_argument("--out", default="runs/compare-fast", help="output folder (cells are reused there)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--max-train-per-class", type=int, default=None, help="override the profile (tiny runs)")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile (tiny runs)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    overrides = {k: v for k, v in (("max_train_per_class", args.max_train_per_class), ("epochs", args.epochs))
                 if v is not None}
    config = dataclasses.replace(CompareConfig(), **{**FAST_PROFILE, **overrides})
    start = time.perf_counter()
    with executor_for(args.jobs) as executor:
        results = compare_features(args.dataset, args.out, config, executor, progress=False)
    seconds = time.perf_counter() - start
    run = results["run"]
    body = (f"{results['table_markdown']}\nwall time {seconds:.0f} s = {seconds / BUDGET_SECONDS:.2f}x the "
            f"10-minute budget of the fast profile; {run['cells_trained']} models trained, "
            f"{run['cells_reused']} reused; device {results['device']}, {args.jobs} worker process(es).")
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_compare.py " + " ".join(sys.argv[1:])
        update_section("compare_features_fast", command.strip(), body)


if __name__ == "__main__":
    main()
