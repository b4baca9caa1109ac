"""Paper scale on one machine: a URMP-like corpus end to end, and how each step's cost grows with pairs.

For each corpus size (``--pieces``; 44 is URMP's), every step runs as a fresh process tree, timed,
with the peak RSS of its largest process (getrusage of the children, as bench_build.py):

  corpus   ``make-demo-urmp --like-urmp --time-scale F --size WxH`` (44 pieces, made once; a corpus of
           N < 44 pieces is N of its piece folders, symlinked: first pieces that give every instrument
           two recordings, as far as N allows, since the bench needs each class in train and
           validation; then evenly spaced ones)
  build    ``build-suburmp --membership all``; its floor is bench_build.py's bare decode of the same
           videos (the faster of one ffmpeg per video with all threads, or JOBS ffmpeg at once)
  extract  ``extract-features --kind K`` for each kind: chunks/s
  compare  ``compare-features`` in the profile of ``--compare-args`` (default ``--fast``: 3 epochs,
           60 fit / 30 selection / 30 held-out pairs per class, 8 channels, seeds 0, 1, 2)
  bench    ``cmav-bench run --suite S`` (default fast) on the built dataset

plus bytes on disk per step (corpus; chunks and images of the build; feature shards per kind). The
cost curve fits time = c * pairs^k (least squares on log-log) per step over the sizes run, and
names every step whose k exceeds 1 + LINEAR_SLACK (worse than linear) with its time per pair at the
smallest and largest size. Sizes, time scale, video size and steps are options:

    # a quick look (minutes): 4 and 11 pieces, 2% of URMP's lengths
    python benchmarks/bench_scale.py --pieces 4 11 --time-scale 0.02 --size 320x180 --bench-suite smoke
    # the reduced curve (43 minutes on 2 quiet cores)
    python benchmarks/bench_scale.py --pieces 4 11 22 44 --time-scale 0.05 --size 480x270
    # the full-size run (about 1.5 hours on 2 cores: corpus 37 min, build 9, extraction 11, compare 8,
    # bench 15; 41 GB of disk): URMP's 44 pieces at their lengths at 1080p
    python benchmarks/bench_scale.py --pieces 44 --time-scale 1 --size 1920x1080

Each step's numbers are one run (wall time on a shared or quiet machine, as stated by the caller);
the exponent comes from as many sizes as were run (at least two are needed for it).

A full-size run takes longer than one sitting, so every finished step is written to a ledger in
``--work`` (``ledger-<corpus>.json``, keyed by the options that change its cost) the moment it ends.
Running the same command again measures only the steps the ledger lacks (a step killed midway is
measured again from its start) and reports them all, each with the time it was measured; ``--fresh``
measures everything again, ``--report-only`` nothing (what a run still going has finished). Each corpus (time scale and size) has its own section in RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build import CLI, decode_floor, run_measured  # noqa: E402
from results import update_section  # noqa: E402

from cmav_data.atomic import write_text  # noqa: E402

BENCH = [sys.executable, "-c", "from cmav_models.cli import main; main()"]  # no __main__ in cmav_models.cli
STEPS = ("build", "extract", "compare", "bench")
KINDS = ("stft", "cqt", "mfcc", "lms")
URMP_PIECES = 44
# The options each step's cost depends on (time scale and size name the corpus, and so the ledger).
STEP_OPTIONS = {"build": ("jobs",), "extract": ("jobs",), "compare": ("jobs", "kinds", "compare_args"),
                "bench": ("jobs", "bench_suite")}
LINEAR_SLACK = 0.15  # k up to 1.15 counts as linear: one run per size carries that much timing noise


def _commit() -> str:
    """The checkout's short commit (``+dirty`` with uncommitted changes): a resumed run may span commits."""
    git = ["git", "-C", str(Path(__file__).resolve().parent)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "")


@dataclass
class Measure:
    seconds: float
    rss_mb: float
    note: str = ""
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"))
    commit: str = "unknown"  # the checkout's when the step started (a run may span commits)


@dataclass
class SizeRun:
    pieces: int
    pairs: int = 0
    video_seconds: float = 0.0
    steps: dict[str, Measure] = field(default_factory=dict)
    disk: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def fit_exponent(pairs: list[float], values: list[float]) -> float:
    """k of values = c * pairs^k, by least squares on (log pairs, log values); needs two distinct sizes."""
    points = [(math.log(p), math.log(v)) for p, v in zip(pairs, values) if p > 0 and v > 0]
    if len({x for x, _ in points}) < 2:
        raise ValueError("an exponent needs at least two distinct sizes with positive values")
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return (sum((x - mean_x) * (y - mean_y) for x, y in points)
            / sum((x - mean_x) ** 2 for x, _ in points))


def growth(k: float) -> str:
    """How a step's cost grows, from its exponent."""
    if k > 1 + LINEAR_SLACK:
        return "worse than linear"
    return "linear" if k >= 1 - LINEAR_SLACK else "better than linear"


def evenly_spaced(n: int, total: int) -> list[int]:
    """n indices spread over range(total), first and last included (n=1: the first)."""
    if n >= total:
        return list(range(total))
    return [round(i * (total - 1) / (n - 1)) if n > 1 else 0 for i in range(n)]


def choose_pieces(n: int, folders: list[str], per_class: int = 2) -> list[int]:
    """Indices of ``n`` of the URMP piece ``folders`` (``NN_Name_code_code...``): greedily the piece that
    most reduces the shortfall of instruments with fewer than ``per_class`` recordings (ties to the
    earliest), until none falls short or ``n`` are taken; then the rest evenly spaced."""
    codes = [f.split("_")[2:] for f in folders]
    counts = {c: 0 for cs in codes for c in cs}
    taken: list[int] = []

    def shortfall_cut(i: int) -> int:
        seen = dict.fromkeys(codes[i], 0)
        for c in codes[i]:
            seen[c] += 1
        return sum(min(k, max(0, per_class - counts[c])) for c, k in seen.items())

    while len(taken) < n:
        best = max((i for i in range(len(folders)) if i not in taken), key=lambda i: (shortfall_cut(i), -i))
        if shortfall_cut(best) == 0:
            break
        taken.append(best)
        for c in codes[best]:
            counts[c] += 1
    rest = [i for i in range(len(folders)) if i not in taken]
    taken += [rest[j] for j in evenly_spaced(n - len(taken), len(rest))] if n > len(taken) else []
    return sorted(taken)


def disk_bytes(path: Path, pattern: str = "**/*") -> int:
    """Bytes of the files under ``path`` matching ``pattern`` (symlinked folders followed)."""
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file()) if path.exists() else 0


class Ledger:
    """The steps measured so far for one corpus, written after each step so a killed run loses only the
    step it was in. A size's entries are kept only while the options that change their cost match."""

    def __init__(self, path: Path, options: dict, fresh: bool):
        self.path = path
        self.options = options
        old = json.loads(path.read_text()) if path.exists() else {}
        # The corpus is one per ledger file (its name carries the time scale and size): its measure
        # stays while the corpus does.
        self.data = {"options": options, "corpus": old.get("corpus"), "sizes": {}}
        if fresh or not old:
            return
        changed = {k for k in options if old["options"].get(k) != options[k]}
        for pieces, entry in old["sizes"].items():
            if changed & set(STEP_OPTIONS["build"]):
                continue  # every later step measured that build
            entry["steps"] = {name: m for name, m in entry["steps"].items()
                              if not changed & set(STEP_OPTIONS[name.split()[0]])}
            self.data["sizes"][pieces] = entry

    def save(self) -> None:
        write_text(self.path, json.dumps(self.data, indent=1) + "\n")

    def corpus(self) -> Measure | None:
        return Measure(**self.data["corpus"]) if self.data["corpus"] else None

    def set_corpus(self, m: Measure) -> None:
        self.data["corpus"] = asdict(m)
        self.save()

    def size(self, pieces: int) -> SizeRun:
        entry = self.data["sizes"].get(str(pieces))
        if entry is None:
            return SizeRun(pieces)
        return SizeRun(pieces, entry["pairs"], entry["video_seconds"],
                       {k: Measure(**v) for k, v in entry["steps"].items() if k != "extract"},  # derived
                       entry["disk"], entry["failed"])

    def record(self, run: SizeRun) -> None:
        self.data["sizes"][str(run.pieces)] = asdict(run)
        self.save()


def make_corpus(work: Path, args: argparse.Namespace, ledger: Ledger) -> tuple[Path, Measure]:
    corpus = work / corpus_name(args)
    known = ledger.corpus()
    if (corpus / "demo.json").exists():
        return corpus, known or Measure(math.nan, math.nan, "reused")
    commit = _commit()
    seconds, rss = run_measured([*CLI, "make-demo-urmp", str(corpus), "--like-urmp", "--time-scale",
                                 str(args.time_scale), "--size", args.size, "-j", str(args.jobs), "--quiet",
                                 "--force"])
    ledger.set_corpus(Measure(seconds, rss, commit=commit))
    return corpus, ledger.corpus()


def corpus_name(args: argparse.Namespace) -> str:
    return f"urmp44-{args.time_scale:g}-{args.size}"


def sub_corpus(corpus: Path, pieces: int, work: Path) -> Path:
    """The 44-piece corpus itself, or a folder of ``pieces`` piece folders of it (``choose_pieces``) symlinked."""
    folders = sorted(p for p in corpus.iterdir() if p.is_dir() and not p.name.startswith("."))
    if pieces >= len(folders):
        return corpus
    sub = work / f"{corpus.name}-{pieces}"
    shutil.rmtree(sub, ignore_errors=True)
    sub.mkdir(parents=True)
    for i in choose_pieces(pieces, [f.name for f in folders]):
        (sub / folders[i].name).symlink_to(folders[i].resolve(), target_is_directory=True)
    return sub


def _run(cmd: list[str], run: SizeRun, step: str) -> Measure | None:
    commit = _commit()  # at the start: with an editable install the step runs the code checked out then
    try:
        seconds, rss = run_measured(cmd)
    except subprocess.CalledProcessError as err:
        # The step's own one-line error, not the probe's traceback that follows it.
        lines = (err.stderr or "").strip().splitlines()
        errors = [line for line in lines if line.startswith("Error:")]
        run.failed[step] = (errors or lines or [f"exit status {err.returncode}"])[-1][:300]
        return None
    return Measure(seconds, rss, commit=commit)


def run_size(corpus: Path, pieces: int, args: argparse.Namespace, ledger: Ledger) -> SizeRun:
    """Measure the steps of ``args.steps`` the ledger lacks at this size; record each as it ends."""
    run = ledger.size(pieces)
    source = sub_corpus(corpus, pieces, args.work)
    out = args.work / f"suburmp-{corpus.name}-{pieces}"
    videos = sorted(source.glob("*/Vid_*.mp4"))
    run.disk["corpus"] = disk_bytes(source, "*/*")
    if "build" not in run.steps or not (out / "build.json").exists():
        run.steps = {}  # everything after the build depends on the build it measured
        run.failed = {}
        shutil.rmtree(out, ignore_errors=True)
        build = _run([*CLI, "build-suburmp", str(source), str(out), "--membership", "all", "-j", str(args.jobs),
                      "--quiet"], run, "build")
        if build is None:
            ledger.record(run)
            return run
        floor, how = decode_floor(videos, args.jobs)
        build.note = f"{build.seconds / floor:.2f}x the decode floor ({floor:.1f} s, {how})"
        run.steps["build"] = build
        info = json.loads((out / "build.json").read_text())
        run.pairs = info["n_pairs"]
        run.video_seconds = sum(probe_seconds(v) for v in videos)
        run.disk["chunks"] = disk_bytes(out / "chunk")
        run.disk["images"] = disk_bytes(out / "img")
        ledger.record(run)
    if "extract" in args.steps:
        for kind in args.kinds:
            if f"extract {kind}" in run.steps:
                continue
            for folder in (out / "features").glob(f"{kind}-*"):
                shutil.rmtree(folder)  # a killed extraction resumes; time a whole one
            run.failed.pop(f"extract {kind}", None)
            one = _run([*CLI, "extract-features", str(out), "--kind", kind, "-j", str(args.jobs), "--quiet"],
                       run, f"extract {kind}")
            if one is not None:
                one.note = f"{run.pairs / one.seconds:.1f} chunks/s"
                run.steps[f"extract {kind}"] = one
                (folder,) = sorted((out / "features").glob(f"{kind}-*"))
                run.disk[f"features {kind}"] = disk_bytes(folder, "*.parquet")
            ledger.record(run)
    if "compare" in args.steps and "compare" not in run.steps:
        target = args.work / f"compare-{corpus.name}-{pieces}"
        shutil.rmtree(target, ignore_errors=True)  # cells would be reused: time a first run
        run.failed.pop("compare", None)
        one = _run([*CLI, "compare-features", str(out), "--out", str(target), "--kinds", ",".join(args.kinds),
                    "--device", "cpu", "-j", str(args.jobs), "--quiet", *shlex.split(args.compare_args)],
                   run, "compare")
        if one is not None:
            results = json.loads((target / "results.json").read_text())
            one.note = (f"{results['run']['cells_trained']} models, seeds "
                        f"{', '.join(map(str, results['config']['seeds']))}, fit pairs {results['counts']['pairs']['fit']}")
            run.steps["compare"] = one
            run.disk["compare arrays"] = disk_bytes(out / "features", "*/arrays/*.npy") + disk_bytes(target / "inputs")
        ledger.record(run)
    if "bench" in args.steps and "bench" not in run.steps:
        runs = args.work / f"runs-{corpus.name}-{pieces}"
        shutil.rmtree(runs, ignore_errors=True)
        run.failed.pop("bench", None)
        one = _run([*BENCH, "run", "--suite", args.bench_suite, "--data", str(out), "--out", str(runs),
                    "--device", "cpu", "--jobs", str(args.jobs), "--quiet"], run, "bench")
        if one is not None:
            one.note = f"suite {args.bench_suite}"
            run.steps["bench"] = one
        ledger.record(run)
    return run


def probe_seconds(video: Path) -> float:
    from cmav_data.media import probe_video

    return probe_video(video).duration


def in_step_order(names) -> list[str]:
    """Step names in the order the steps run (a resumed ledger holds them in the order they ended)."""
    order = ["build", *(f"extract {k}" for k in KINDS), "extract", "compare", "bench"]
    return sorted(names, key=lambda n: order.index(n) if n in order else len(order))


def with_extract_total(run: SizeRun, kinds: list[str]) -> SizeRun:
    """``run`` with the step "extract": the sum over the kinds, once every kind is measured."""
    parts = [run.steps[f"extract {k}"] for k in kinds if f"extract {k}" in run.steps]
    if len(parts) < len(kinds) or not parts:
        return run
    seconds = sum(m.seconds for m in parts)
    total = Measure(seconds, max(m.rss_mb for m in parts), f"{len(parts) * run.pairs / seconds:.1f} chunks/s over "
                    "the kinds", max(m.at for m in parts), " / ".join(sorted({m.commit for m in parts})))
    return dataclasses.replace(run, steps={**run.steps, "extract": total})


def report(runs: list[SizeRun], args: argparse.Namespace, corpus_measure: Measure) -> str:
    runs = [with_extract_total(r, args.kinds) for r in runs]
    lines = [f"corpus: make-demo-urmp --like-urmp --time-scale {args.time_scale:g} --size {args.size} "
             f"({corpus_measure.note or f'{corpus_measure.seconds:.1f} s, peak RSS {corpus_measure.rss_mb:.0f} MB'}); "
             f"-j {args.jobs}; compare-features {args.compare_args or '(default profile)'}; bench suite {args.bench_suite}"]
    for run in runs:
        lines += ["", f"{run.pieces} pieces, {run.pairs} pairs, {run.video_seconds:.0f} s of video:",
                  f"  {'step':<14} {'wall s':>9} {'peak RSS MB':>12}  {'measured (UTC, commit)':<32} note"]
        for name in in_step_order(run.steps):
            m = run.steps[name]
            lines.append(f"  {name:<14} {m.seconds:>9.1f} {m.rss_mb:>12.0f}  {m.at + ', ' + m.commit:<32} {m.note}")
        for name, cause in run.failed.items():
            lines.append(f"  {name:<14} FAILED: {cause}")
        missing = [s for s in args.steps if s not in run.steps and not any(f.startswith(s) for f in run.failed)]
        if missing:
            lines.append(f"  not measured yet: {', '.join(missing)}")
        lines.append("  disk: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in run.disk.items()))
    sized = [r for r in runs if r.pairs]
    if len({r.pairs for r in sized}) >= 2:
        lines += ["", f"cost curve over {', '.join(str(r.pairs) for r in sized)} pairs "
                      f"(time = c * pairs^k, least squares on log-log; linear within k <= {1 + LINEAR_SLACK:g}; "
                      "a step is fitted over the sizes it ran at):",
                  f"  {'step':<14} {'k time':>7} {'k RSS':>7}  {'growth':<19} ms per added pair, size to size"]
        worse = []
        for name in in_step_order({n for r in sized for n in r.steps}):
            at = [r for r in sized if name in r.steps]
            if len({r.pairs for r in at}) < 2:
                continue
            pairs = [r.pairs for r in at]
            k_time = fit_exponent(pairs, [r.steps[name].seconds for r in at])
            k_rss = fit_exponent(pairs, [r.steps[name].rss_mb for r in at])
            # A fixed start-up cost pulls k below 1 on small corpora; the added cost per pair from one
            # size to the next shows the per-pair growth without it.
            marginal = [1000 * (b.steps[name].seconds - a.steps[name].seconds) / (b.pairs - a.pairs)
                        for a, b in zip(at, at[1:]) if b.pairs > a.pairs]
            lines.append(f"  {name:<14} {k_time:>7.2f} {k_rss:>7.2f}  {growth(k_time):<19} "
                         + ", ".join(f"{m:.1f}" for m in marginal))
            if growth(k_time) == "worse than linear":
                first, last = at[0], at[-1]
                worse.append(f"{name} (k = {k_time:.2f}: {1000 * first.steps[name].seconds / first.pairs:.1f} ms per "
                             f"pair at {first.pairs} pairs, {1000 * last.steps[name].seconds / last.pairs:.1f} ms at "
                             f"{last.pairs})")
        lines.append("worse than linear: " + ("; ".join(worse) if worse else "none"))
    lines.append("\none run per step and size (wall time; not a sampled statistic)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pieces", type=int, nargs="+", default=[4, 11, 22, 44], help="corpus sizes (of URMP's 44)")
    ap.add_argument("--time-scale", type=float, default=1.0, help="make-demo-urmp --time-scale (1 = URMP's lengths)")
    ap.add_argument("--size", default="1920x1080", help="video size (URMP's is 1920x1080)")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {','.join(STEPS)}")
    ap.add_argument("--kinds", default=",".join(KINDS), help="feature kinds to extract and compare")
    ap.add_argument("--compare-args", default="--fast", help="compare-features profile flags (quoted)")
    ap.add_argument("--bench-suite", default="fast", help="cmav-bench run --suite")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cmav-bench-scale"))
    ap.add_argument("--fresh", action="store_true",
                    help="measure every step again, ignoring the ledger (a corpus already made is kept)")
    ap.add_argument("--report-only", action="store_true",
                    help="measure nothing: report (and record) what the ledger holds, e.g. of a run still going")
    ap.add_argument("--no-record", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()
    args.steps = [s for s in args.steps.split(",") if s]
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.steps) - set(STEPS)
    if unknown or not set(args.kinds) <= set(KINDS) or any(n < 1 or n > URMP_PIECES for n in args.pieces):
        ap.error(f"steps among {','.join(STEPS)}, kinds among {','.join(KINDS)}, pieces in 1..{URMP_PIECES}")
    args.work.mkdir(parents=True, exist_ok=True)
    options = {"time_scale": args.time_scale, "size": args.size, "jobs": args.jobs, "kinds": args.kinds,
               "compare_args": args.compare_args, "bench_suite": args.bench_suite}
    ledger = Ledger(args.work / f"ledger-{corpus_name(args)}.json", options, args.fresh)
    if args.report_only:
        corpus_measure = ledger.corpus() or Measure(math.nan, math.nan, "not made yet")
        runs = [ledger.size(n) for n in sorted(args.pieces)]
    else:
        corpus, corpus_measure = make_corpus(args.work, args, ledger)
        runs = [run_size(corpus, n, args, ledger) for n in sorted(args.pieces)]
    body = report(runs, args, corpus_measure)
    print(body)
    if not args.no_record:
        command = " ".join(["python benchmarks/bench_scale.py", *(a for a in sys.argv[1:] if a != "--report-only")])
        update_section(f"bench_scale {corpus_name(args)}", command, body)


if __name__ == "__main__":
    main()
