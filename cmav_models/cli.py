"""The ``cmav-bench`` command (thin shims over cmav_models)."""

from __future__ import annotations

import os

import click

EPILOG_RUN = """\b
Examples:
  cmav-bench run                                  # fast suite, seed 0, on demo/suburmp
  cmav-bench run --seeds 3                        # seeds 0,1,2: mean, s.d. and intervals
  cmav-bench judges --data demo/suburmp --out judges/demo
  cmav-bench run --seeds 0,1,2 --judges judges/demo
  cmav-bench run --gan both --mismatch pose        # the projection GAN's rows too; pose mismatches
  cmav-bench run --suite full --data suburmp --out runs
\b
Without --judges, the judges are trained once per dataset (OUT/judges-<suite>-<hash>/) and
reused by every seed and run. Rerunning the same command reuses every finished seed and resumes
unfinished ones from their checkpoints. The report is OUT/<suite>-<hash>/report.md.
"""

EPILOG_JUDGES = """\b
Examples:
  cmav-bench judges --data demo/suburmp --out judges/demo
  cmav-data verify judges/demo                    # sizes and sha256 against its index.json
  cmav-bench run --seeds 3 --judges judges/demo
\b
J gets image_classifier.pt, sound_classifier.pt, pose_regressor.pt, judges.json (the dataset's
manifest sha256, the config, each file's sha256) and index.json (the layout of published shards:
serve J over HTTP and `cmav-data download <url>/index.json DEST` fetches it). Rerunning with the
same options does nothing.
"""

SUITE = click.option("--suite", type=click.Choice(["fast", "full", "smoke"]), default="fast",
                     # Literal numbers: importing bench (and torch) here would slow every --help.
                     help="fast: 32 px, models on at most 2,400 training pairs and judges on at most 16,000, "
                          "whatever the dataset's size (on the demo build on 2 CPU cores: judges 9 min once, "
                          "then under 7 min a seed); full: the paper's scale, 128 px, all pairs (smoke: seconds, "
                          "for tests).")
DATA = click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=str), default="demo/suburmp",
                    help="A built Sub-URMP dataset (folder with manifest.parquet).")
DEVICE = click.option("--device", default="auto", help="torch device: auto (a GPU when present), cpu, cuda, ...")
JOBS = click.option("--jobs", type=click.IntRange(min=1), default=1, help="Processes decoding images and LMS.")
THREADS = click.option("--threads", type=click.IntRange(min=1), default=1,
                       help="torch CPU threads (default 1, as every figure in benchmarks/RESULTS.md was made; more "
                            "threads were not measured to be faster on 2 cores).")
SILENT = click.option("--include-silent", is_flag=True,
                      help="Keep pairs the manifest flags silent (left out of training and scoring by default).")
QUIET = click.option("--quiet", is_flag=True, help="No progress bars.")


def _seeds(_ctx, _param, value: str | None):
    if value is None:
        return None
    from cmav_models.bench import parse_seeds

    try:
        return parse_seeds(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.group(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
def main() -> None:
    """cmav-bench: train and score the reference cross-modal models."""


@main.command("run", epilog=EPILOG_RUN)
@SUITE
@DATA
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default="runs",
              help="Runs folder; the run goes to OUT/<suite>-<config hash>/.")
@DEVICE
@JOBS
@click.option("--metric", "metrics", multiple=True,
              help="Metric to report (repeatable; registry names); default: all built-in metrics.")
@click.option("--seeds", callback=_seeds, default=None,
              help="Seeds of the encoders and generators: a list (0,1,2) or a count (3 = 0,1,2). [default: 0]")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="One seed (the same as --seeds N,).")
@click.option("--gan", type=click.Choice(["gan-cls", "projection", "both"]), default="gan-cls",
              help="GAN rows: gan-cls (the paper's S2I-C, S2I-A, S2I-N, I2S), projection (our projection/hinge "
                   "GAN: S2I-C-proj, S2I-AE-proj, S2I-N-proj, I2S-proj) or both; S2I-FM and I2S-FM always run.")
@click.option("--mismatch", type=click.Choice(["instrument", "pose"]), default="instrument",
              help="Mismatched sounds of the paper's S2I GANs: another instrument (instrument-oriented) or the "
                   "same instrument at another pitch position (pose-oriented; I2S always uses instrument).")
@click.option("--judges", "judges_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="A judges folder made by `cmav-bench judges` on this dataset; default: train them once here.")
@SILENT
@THREADS
@QUIET
def run(suite: str, data_dir: str, out_dir: str, device: str, jobs: int, metrics: tuple[str, ...],
        seeds: tuple[int, ...] | None, seed: int | None, gan: str, mismatch: str, judges_dir: str | None,
        include_silent: bool, threads: int, quiet: bool) -> None:
    """Train the encoders and the generators (the paper's S2I-C, S2I-A, S2I-N and I2S, or our projection
    GAN's rows, and flow matching's S2I-FM and I2S-FM) on a built Sub-URMP over seeds, score them with
    fixed judges and write a report with intervals, paired comparisons, sample grids and sound."""
    from cmav_models.bench import INPUT_ERRORS, run_from_options

    if seeds is not None and seed is not None:
        raise click.UsageError("give --seeds or --seed, not both")
    chosen = seeds if seeds is not None else (seed if seed is not None else 0,)
    try:
        run_dir = run_from_options(suite, data_dir, out_dir, device, jobs, metrics, chosen, judges_dir,
                                   include_silent, threads, progress=not quiet, gan=gan, mismatch=mismatch)
    except INPUT_ERRORS as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"report: {run_dir / 'report.md'}")


@main.command("judges", epilog=EPILOG_JUDGES)
@SUITE
@DATA
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), required=True,
              help="Folder for the judges (J).")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="The judges' own seed.")
@DEVICE
@JOBS
@SILENT
@THREADS
@QUIET
def judges(suite: str, data_dir: str, out_dir: str, seed: int, device: str, jobs: int, include_silent: bool,
           threads: int, quiet: bool) -> None:
    """Train the image classifier, sound classifier and pose regressor once and save them with their
    sha256 and the dataset manifest's hash, for `cmav-bench run --judges`."""
    from cmav_models.bench import INPUT_ERRORS, judges_from_options

    try:
        made = judges_from_options(suite, data_dir, out_dir, device, jobs, seed, include_silent, threads,
                                   progress=not quiet)
    except INPUT_ERRORS as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"judges: {made.path} (judges.json sha256 {made.sha256})")


COMPARE_EPILOG = """\b
Examples:
  cmav-data compare-features demo/suburmp --fast
  cmav-data compare-features demo/suburmp --kinds lms,mfcc --depths 3,4 --seeds 5 --poolings keep
  cmav-data compare-features demo/suburmp --device cuda
\b
Writes results.json, results.md (one table per pooling), heatmap_<pooling>.png and confusion_*.png
to --out, and one file per trained cell under --out/cells: the same command again trains nothing.
"""


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


# Registered as `cmav-data compare-features` (entry point group cmav_data.commands).
@click.command("compare-features", epilog=COMPARE_EPILOG,
               context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder.  [default: DATASET/compare-features]")
@click.option("--fast", is_flag=True,
              help="Quick profile: 3 epochs, 60 fit / 30 selection / 30 held-out pairs per class, 8 channels "
                   "(still 3 seeds and both poolings).")
@click.option("--kinds", default="stft,cqt,mfcc,lms", help="Comma-separated representations.")
@click.option("--depths", default="2,3,4,5", help="Comma-separated conv layer counts (2..5).")
@click.option("--poolings", default="pool,keep",
              help="Comma-separated classifier poolings: pool (over frequency and time), keep (frequency rows kept).")
@click.option("--seeds", type=click.IntRange(1), default=3, help="Number of seeds (0..N-1).")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Training epochs.  [default: 30, or 3 with --fast]")
@click.option("--max-train-per-class", type=click.IntRange(1), default=None,
              help="Fit on N evenly spaced training pairs per class.  [default: all, 60 with --fast]")
@click.option("--max-validation-per-class", type=click.IntRange(1), default=None,
              help="Select and score on N evenly spaced pairs per class.  [default: all, 30 with --fast]")
@click.option("--include-silent", is_flag=True, help="Keep the manifest's silent pairs (left out by default).")
@click.option("--backend", type=click.Choice(["fast", "reference"]), default="fast", help="Feature backend.")
@click.option("--device", default="auto",
              help="torch device: auto (a GPU when present), cpu, cuda, cuda:1, ...; on a GPU training runs in "
                   "bf16 autocast where supported, scoring in fp32.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=os.cpu_count() or 1,
              help="Worker processes (models trained in parallel, one thread each).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def compare_features_command(dataset, out, fast, kinds, depths, poolings, seeds, epochs, max_train_per_class,
                             max_validation_per_class, include_silent, backend, device, jobs, quiet):
    """Train the sound classifier on each representation x depth x pooling; choose on a selection set
    carved by recording from the training split, report the choice on the held-out split."""
    import dataclasses

    from cmav_data.features.specs import KINDS, SpecError
    from cmav_data.features.store import FeatureInputError
    from cmav_data.parallel import executor_for
    from cmav_models.compare_features import FAST_PROFILE, POOLINGS, CompareConfig, compare_features

    overrides = dict(FAST_PROFILE) if fast else {}
    overrides.update(kinds=tuple(k for k in kinds.split(",") if k), depths=_int_list(depths),
                     poolings=tuple(p for p in poolings.split(",") if p), seeds=tuple(range(seeds)),
                     include_silent=include_silent, backend=backend)
    for name, value in (("epochs", epochs), ("max_train_per_class", max_train_per_class),
                        ("max_validation_per_class", max_validation_per_class)):
        if value is not None:
            overrides[name] = value
    for what, given, known in (("representation", overrides["kinds"], KINDS),
                               ("pooling", overrides["poolings"], tuple(POOLINGS))):
        unknown = set(given) - set(known)
        if unknown:
            raise click.ClickException(f"unknown {what}(s) {sorted(unknown)} (known: {', '.join(known)})")
    config = dataclasses.replace(CompareConfig(), **overrides)
    try:
        with executor_for(jobs) as executor:
            results = compare_features(dataset, out, config, executor, progress=not quiet, device=device)
    except (SpecError, FeatureInputError, ValueError, RuntimeError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(results["table_markdown"], nl=False)
    run = results["run"]
    click.echo(f"{run['cells_trained']} model(s) trained, {run['cells_reused']} reused from earlier runs")


EPILOG_RATINGS = """\b
Example (two raters scored runs/fast-1a2b/rate.html and sent back their exports):
  cmav-bench ratings runs/fast-1a2b ratings-alice.csv ratings-bob.csv
\b
Joins the CSVs with RUN/rate_key.json (the hidden key beside rate.html), prints the mean
score per variant with a 95% interval (cluster bootstrap over samples) and the raters'
agreement (Krippendorff's alpha, interval metric), and writes RUN/ratings.json.
"""


@main.command("ratings", epilog=EPILOG_RATINGS)
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True, file_okay=False))
@click.argument("csv_files", metavar="CSV...", nargs=-1, required=True, type=click.Path(dir_okay=False))
def ratings(run_dir: str, csv_files: tuple[str, ...]) -> None:
    """Mean human score per variant and rater agreement, from raters' CSVs of RUN's rate.html."""
    import json
    from pathlib import Path

    from cmav_data.atomic import write_text
    from cmav_models.ratings import RatingsError, format_summary, read_key, read_ratings, summarize_ratings

    try:
        key = read_key(run_dir)
        summary = summarize_ratings(key, read_ratings(list(csv_files), key))
    except RatingsError as err:
        raise click.ClickException(str(err)) from None
    write_text(Path(run_dir) / "ratings.json", json.dumps(summary.to_dict(), indent=2, sort_keys=True) + "\n")
    click.echo(format_summary(summary), nl=False)
