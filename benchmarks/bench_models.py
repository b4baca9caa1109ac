"""`cmav-bench` fast suite with fixed judges and 3 seeds, against its time goals, with intervals.

Goals (2 CPU cores): the judges plus one seed under 10 minutes; the judges plus 3 seeds under 30
minutes. Steps, timed separately in a fresh work folder (no resume from earlier runs):
``cmav-bench judges`` once, ``run --seeds 0 --judges J``, then ``run --seeds 0,1,2 --judges J``
(reusing seed 0, so it trains seeds 1 and 2). References measured in the same run: chance accuracy
(1 / classes in the validation split), the image judge's accuracy on real validation images (the
ceiling of the paper's metric) and the budgets.

    python benchmarks/bench_models.py                        # demo/suburmp, fast suite, 3 seeds
    python benchmarks/bench_models.py --gan both                # the projection GAN's rows too
    python benchmarks/bench_models.py --data /tmp/suburmp --suite smoke --no-record
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import RESULTS, update_section  # noqa: E402

from cmav_data.atomic import write_bytes  # noqa: E402
from cmav_data.parallel import executor_for  # noqa: E402
from cmav_models.bench import GAN_CHOICES, SUITES, make_judges, parse_seeds, run_bench  # noqa: E402
from cmav_models.report import summary_text  # noqa: E402
from cmav_models.stats import format_interval  # noqa: E402

ONE_SEED_BUDGET = 600.0
THREE_SEED_BUDGET = 1800.0
SHOWN_METRICS = ("accuracy", "pose_r", "frechet", "kid")


def _cell(m: dict | None, unit: str) -> str:
    text = summary_text(m, unit)
    if m is not None and m["recordings_interval"] is not None:
        text += f"; recordings CI {format_interval(*m['recordings_interval'])}"
    return text


def table(payload: dict) -> list[str]:
    chance = 1 / payload["data"]["classes"]
    real_image = payload["rows"]["image classifier (real)"]["metrics"]["accuracy"]["mean"]
    lines = [f"chance accuracy {chance:.3f} ({payload['data']['classes']} classes); "
             f"{payload['data']['validation_pairs']} validation pairs from {payload['data']['validation_recordings']} "
             f"recordings; silent pairs left out: {payload['data']['silent_left_out']}", ""]
    for metric in SHOWN_METRICS:
        if metric not in payload["metrics"]:
            continue
        lines.append(f"{metric} ({'higher' if payload['metrics'][metric]['higher_is_better'] else 'lower'} is better)")
        for row, record in payload["rows"].items():
            m = record["metrics"][metric]
            unit = "seed" if record["kind"] == "generated" else "judge training"
            extra = ""
            if metric == "accuracy" and m is not None:
                extra = f"   {m['mean'] / chance:4.1f}x chance"
                if row.startswith("S2I") and real_image > 0:
                    extra += f", {m['mean'] / real_image:4.2f}x real"
            lines.append(f"  {row:<24} {_cell(m, unit)}{extra}")
        lines.append("")
    lines.append("paired differences (a - b, same seeds)")
    for p in payload["paired"]:
        if p["metric"] in SHOWN_METRICS:
            better = f" ({p['better']} better)" if p["better"] else ""
            lines.append(f"  {p['a']} - {p['b']:<6} {p['metric']:<9} {summary_text(p['summary'])}: "
                         f"{p['sentence']}{better}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("demo/suburmp"))
    ap.add_argument("--suite", default="fast", choices=sorted(SUITES))
    ap.add_argument("--gan", default="gan-cls", choices=sorted(GAN_CHOICES),
                    help="GAN rows (cmav-bench run --gan); the flow-matching rows always run")
    ap.add_argument("--seeds", default="3", help="seeds of the multi-seed step (0,1,2 or a count)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/cmav-bench-models"))
    ap.add_argument("--judges", type=Path, default=None,
                    help="score with this judges folder (same suite and dataset) instead of training them; "
                         "their time is then not part of the figures")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="decoding processes")
    ap.add_argument("--no-record", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()

    seeds = parse_seeds(args.seeds)
    config = replace(SUITES[args.suite], gan=args.gan)
    torch.set_num_threads(args.threads)
    shutil.rmtree(args.work, ignore_errors=True)
    judges_dir, runs = args.judges or args.work / "judges", args.work / "runs"
    with executor_for(args.jobs) as executor:
        t = time.perf_counter()
        if args.judges is None:
            make_judges(args.data, judges_dir, config, device="cpu", executor=executor, progress=False)
        judges_s = time.perf_counter() - t
        t = time.perf_counter()
        run_bench(args.data, runs, config, seeds[:1], judges_dir, device="cpu", executor=executor, progress=False)
        one_s = time.perf_counter() - t
        t = time.perf_counter()
        result = run_bench(args.data, runs, config, seeds, judges_dir, device="cpu", executor=executor,
                           progress=False)
        rest_s = time.perf_counter() - t
    one_total, all_total = judges_s + one_s, judges_s + one_s + rest_s
    plus = "judges + " if args.judges is None else ""
    judges_line = (f"judges (once)              {judges_s:7.1f} s" if args.judges is None else
                   f"judges                     given ({args.judges}, trained earlier; not timed here)")
    lines = [f"suite {args.suite}, --gan {args.gan}, seeds {','.join(map(str, seeds))}, fixed judges, "
             f"{args.threads} torch thread(s), -j {args.jobs}, data {args.data}",
             judges_line,
             f"seed {seeds[0]} (decode + train + score) {one_s:7.1f} s",
             f"{plus}1 seed{' ' * (19 - len(plus))}{one_total:7.1f} s   {one_total / ONE_SEED_BUDGET:5.2f}x the "
             f"{ONE_SEED_BUDGET:.0f} s goal",
             f"other {len(seeds) - 1} seed(s)             {rest_s:7.1f} s",
             f"{plus}{len(seeds)} seeds{' ' * (18 - len(plus))}{all_total:7.1f} s   "
             f"{all_total / THREE_SEED_BUDGET:5.2f}x the {THREE_SEED_BUDGET:.0f} s goal", "", *table(result.metrics)]
    body = "\n".join(lines)
    print(body)
    if not args.no_record:
        section = "bench_models" if args.gan == "gan-cls" else f"bench_models_{args.gan}"  # one section per row set
        # The first seed's sample grids beside RESULTS.md: one example per instrument, every row.
        for figure in ("s2i_samples", "i2s_samples"):
            write_bytes(RESULTS.parent / f"{section}_{figure}.png",
                        (result.run_dir / "figures" / f"{figure}.png").read_bytes())
        body += (f"\n\nsample grids (seed {seeds[0]}): benchmarks/{section}_s2i_samples.png, "
                 f"benchmarks/{section}_i2s_samples.png")
        update_section(section, ("python benchmarks/bench_models.py " + " ".join(sys.argv[1:])).strip(), body)


if __name__ == "__main__":
    main()
