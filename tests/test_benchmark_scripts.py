"""The benchmark scripts still run against today's code: each answers --help (its imports resolve),
and bench_train runs end to end at a tiny size. A renamed module once broke bench_train unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("bench_*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_answers_help(script):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_bench_train_runs_at_a_tiny_size():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_train.py"), "--kind", "lms", "--pairs", "32",
                             "--gan-pairs", "64", "--repeats", "1", "--no-record"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ratio ") == 3  # the cell, the GAN-CLS stage, the projection stage
    assert "train_gan_cls" in result.stdout and "train_cgan" in result.stdout
