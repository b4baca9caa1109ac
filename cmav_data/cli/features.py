"""`cmav-data` commands: features (thin shims over the library).

``compare-features`` trains models, so it lives in ``cmav_models`` and plugs into ``cmav-data``
through the ``cmav_data.commands`` entry-point group (see ``cmav_data.cli``).
"""

from __future__ import annotations

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
Writes DATASET/features/<kind>-<key>/part-NNNNN.parquet and features.json (each shard's size
and sha256). Running it again with the same inputs checks the shards and does nothing; a damaged
shard is recomputed (with a warning naming it); changing a parameter writes a new folder.
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
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    state = "cached, nothing to do" if result.computed_shards == 0 else f"{result.computed_shards} shard(s) computed"
    click.echo(f"{result.out_dir}: {result.n_pairs} pairs, {result.n_shards} shard(s), {state}; "
               f"{result.n_resampled} resampled, {result.n_resized} padded or cut")
