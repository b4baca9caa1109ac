"""`cmav-data` commands: features (thin shims over the library)."""

from __future__ import annotations

import dataclasses
import os

import click

from cmav_data.cli import main
from cmav_data.cli.options import executor_options, one_line_errors
from cmav_data.features.specs import KINDS, SpecError

EXTRACT_EPILOG = """\b
Examples:
  cmav-data extract-features demo/suburmp --kind lms
  cmav-data extract-features demo/suburmp --kind cqt --backend reference -j 2
  cmav-data extract-features demo/suburmp --kind lms --param n_mels=64 --param top_db=none
  cmav-data extract-features /shared/Sub-URMP --kind cqt --scheduler tcp://head:8786

\b
Writes DATASET/features/<kind>-<key>/part-NNNNN.parquet and features.json. Running it again
with the same inputs does nothing; changing a parameter writes a new folder.
"""

COMPARE_EPILOG = """\b
Examples:
  cmav-data compare-features demo/suburmp --fast
  cmav-data compare-features demo/suburmp --kinds lms,mfcc --depths 3,4 --seeds 5
\b
Writes results.json, results.md, heatmap.png and confusion_*.png to --out.
"""


@main.command("extract-features", epilog=EXTRACT_EPILOG)
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--kind", type=click.Choice(KINDS), default="lms", help="Representation to compute.")
@click.option("--backend", type=click.Choice(["fast", "reference"]), default="fast",
              help="fast: batched torch (same numbers within stated tolerances); reference: librosa per chunk.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override a spec parameter (repeatable), e.g. n_mels=64; 'none' for None.")
@click.option("--shard-size", type=click.IntRange(1), default=512, help="Pairs per Parquet shard.")
@executor_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
def extract_features_command(dataset, kind, backend, params, shard_size, jobs, executor_kind, scheduler, quiet):
    """Compute a feature representation for every pair of a built dataset, as Parquet shards."""
    from cmav_data.features.specs import make_spec
    from cmav_data.features.store import FeatureInputError, extract_features
    from cmav_data.parallel import executor_for

    with one_line_errors(SpecError, FeatureInputError):
        spec = make_spec(kind, params)
        with executor_for(jobs, executor_kind, scheduler) as executor:
            result = extract_features(dataset, spec, backend, executor, shard_size, progress=not quiet)
    state = "cached, nothing to do" if result.computed_shards == 0 else f"{result.computed_shards} shard(s) computed"
    click.echo(f"{result.out_dir}: {result.n_pairs} pairs, {result.n_shards} shard(s), {state}; "
               f"{result.n_resampled} resampled, {result.n_resized} padded or cut")


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


@main.command("compare-features", epilog=COMPARE_EPILOG)
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder.  [default: DATASET/compare-features]")
@click.option("--fast", is_flag=True,
              help="Quick profile: 3 epochs, one seed, 100 train / 40 validation pairs per class, 16 channels.")
@click.option("--kinds", default=",".join(KINDS), help="Comma-separated representations.")
@click.option("--depths", default="2,3,4,5", help="Comma-separated conv layer counts (2..5).")
@click.option("--seeds", type=click.IntRange(1), default=None,
              help="Number of seeds (0..N-1).  [default: 3, or 1 with --fast]")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Training epochs.  [default: 30, or 3 with --fast]")
@click.option("--max-train-per-class", type=click.IntRange(1), default=None,
              help="Use N evenly spaced training pairs per class.  [default: all, 100 with --fast]")
@click.option("--max-validation-per-class", type=click.IntRange(1), default=None,
              help="Score on N evenly spaced validation pairs per class.  [default: all, 40 with --fast]")
@click.option("--backend", type=click.Choice(["fast", "reference"]), default="fast",
              help="Feature backend.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=os.cpu_count() or 1,
              help="Worker processes (models trained in parallel, one thread each).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def compare_features_command(dataset, out, fast, kinds, depths, seeds, epochs, max_train_per_class,
                             max_validation_per_class, backend, jobs, quiet):
    """Train the sound classifier on each representation x depth; report validation accuracy."""
    from cmav_data.features.compare import FAST_PROFILE, CompareConfig, compare_features
    from cmav_data.features.store import FeatureInputError
    from cmav_data.parallel import executor_for

    overrides = dict(FAST_PROFILE) if fast else {}
    overrides.update(kinds=tuple(k for k in kinds.split(",") if k), depths=_int_list(depths), backend=backend)
    for name, value in (("max_train_per_class", max_train_per_class),
                        ("max_validation_per_class", max_validation_per_class)):
        if value is not None:
            overrides[name] = value
    if seeds is not None:
        overrides["seeds"] = tuple(range(seeds))
    if epochs is not None:
        overrides["epochs"] = epochs
    unknown = set(overrides["kinds"]) - set(KINDS)
    if unknown:
        raise click.ClickException(f"unknown representation(s) {sorted(unknown)} (known: {', '.join(KINDS)})")
    config = dataclasses.replace(CompareConfig(), **overrides)
    try:
        with executor_for(jobs) as executor:
            results = compare_features(dataset, out, config, executor, progress=not quiet)
    except (SpecError, FeatureInputError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(results["table_markdown"], nl=False)
    best = results["best"]
    click.echo(f"best: {best['kind']} with {best['depth']} conv layers ({best['mean']:.3f})")
