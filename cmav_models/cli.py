"""The ``cmav-bench`` command (thin shims over cmav_models)."""

from __future__ import annotations

import os

import click

EPILOG_RUN = """\b
Examples:
  cmav-bench run                                  # fast suite on demo/suburmp, report in runs/<id>/
  cmav-bench run --suite full --data suburmp --out runs
\b
Rerunning the same command resumes from the run's checkpoints. The report is runs/<id>/report.md.
"""


@click.group(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
def main() -> None:
    """cmav-bench: train and score the reference cross-modal models."""


@main.command("run", epilog=EPILOG_RUN)
@click.option("--suite", type=click.Choice(["fast", "full", "smoke"]), default="fast",
              help="fast: < 10 min on 2 CPU cores, 32 px; full: the paper's scale, 128 px "
                   "(smoke: seconds, for tests).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=str), default="demo/suburmp",
              help="A built Sub-URMP dataset (folder with manifest.parquet).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default="runs",
              help="Runs folder; the run goes to OUT/<suite>-<config hash>/.")
@click.option("--device", default="auto", help="torch device: auto (a GPU when present), cpu, cuda, cuda:1, ...")
@click.option("--jobs", type=click.IntRange(min=1), default=1, help="Processes decoding images and LMS.")
@click.option("--metric", "metrics", multiple=True,
              help="Metric to report (repeatable; registry names); default: all built-in metrics.")
@click.option("--seed", type=int, default=0, help="Seed of all weights, batches and noise.")
@click.option("--threads", type=click.IntRange(min=1), default=1,
              help="torch CPU threads; 1 is fastest for these small networks on shared cores.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run(suite: str, data_dir: str, out_dir: str, device: str, jobs: int, metrics: tuple[str, ...], seed: int,
        threads: int, quiet: bool) -> None:
    """Train the classifiers, S2I-C, S2I-A, S2I-N and I2S on a built Sub-URMP and write a report."""
    from cmav_data.manifest import ManifestError
    from cmav_models.bench import INPUT_ERRORS, run_from_options

    try:
        run_dir = run_from_options(suite, data_dir, out_dir, device, jobs, metrics, seed, threads,
                                   progress=not quiet)
    except (*INPUT_ERRORS, ManifestError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"report: {run_dir / 'report.md'}")


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
