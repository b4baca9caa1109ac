"""The ``cmav-bench`` command (thin shims over cmav_models)."""

from __future__ import annotations

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
