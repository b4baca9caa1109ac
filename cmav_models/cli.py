"""The ``cmav-bench`` command (thin shims over cmav_models)."""

from __future__ import annotations

import click

EPILOG_RUN = """\b
Examples:
  cmav-bench run                                  # fast suite, seed 0, on demo/suburmp
  cmav-bench run --seeds 3                        # seeds 0,1,2: mean, s.d. and intervals
  cmav-bench judges --data demo/suburmp --out judges/demo
  cmav-bench run --seeds 0,1,2 --judges judges/demo
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
                     help="fast: < 10 min on 2 CPU cores per seed, 32 px; full: the paper's scale, 128 px "
                          "(smoke: seconds, for tests).")
DATA = click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=str), default="demo/suburmp",
                    help="A built Sub-URMP dataset (folder with manifest.parquet).")
DEVICE = click.option("--device", default="auto", help="torch device: auto (a GPU when present), cpu, cuda, ...")
JOBS = click.option("--jobs", type=click.IntRange(min=1), default=1, help="Processes decoding images and LMS.")
THREADS = click.option("--threads", type=click.IntRange(min=1), default=1,
                       help="torch CPU threads; 1 is fastest for these small networks on shared cores.")
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
@click.option("--judges", "judges_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="A judges folder made by `cmav-bench judges` on this dataset; default: train them once here.")
@SILENT
@THREADS
@QUIET
def run(suite: str, data_dir: str, out_dir: str, device: str, jobs: int, metrics: tuple[str, ...],
        seeds: tuple[int, ...] | None, seed: int | None, judges_dir: str | None, include_silent: bool,
        threads: int, quiet: bool) -> None:
    """Train the encoders, S2I-C, S2I-A, S2I-N and I2S on a built Sub-URMP over seeds, score them with
    fixed judges and write a report with intervals and paired comparisons."""
    from cmav_models.bench import INPUT_ERRORS, run_from_options

    if seeds is not None and seed is not None:
        raise click.UsageError("give --seeds or --seed, not both")
    chosen = seeds if seeds is not None else (seed if seed is not None else 0,)
    try:
        run_dir = run_from_options(suite, data_dir, out_dir, device, jobs, metrics, chosen, judges_dir,
                                   include_silent, threads, progress=not quiet)
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
