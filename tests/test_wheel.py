"""cmav installed as users install it: a wheel, in a fresh virtual environment, outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from urmp_tree import make_piece

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "cmav_data", "cmav_models", "manifests")  # what a wheel is built from


def _run(cmd: list, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (the build leaves build/ and egg-info in its tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, src / name)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist",
                  src], cwd=tmp)
    assert built.returncode == 0, built.stderr
    (path,) = (tmp / "dist").glob("cmav-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory) -> Path:
    """A fresh venv holding only cmav (from the wheel); it sees this environment's dependencies
    through a .pth (as /work/wt/mkwt.sh does), never the checkout."""
    root = tmp_path_factory.mktemp("venv")
    made = _run([sys.executable, "-m", "venv", "--without-pip", root / "env"], cwd=root)
    assert made.returncode == 0, made.stderr
    env = root / "env"
    python = env / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).stdout.strip())
    # The directories the dependencies are installed in; a path given by a .pth line is not a site
    # directory, so an editable install's finder there is not run and cmav_data comes from the wheel only.
    deps = {sysconfig.get_paths()["purelib"], *(p for p in sys.path if Path(p).name in ("site-packages", "dist-packages"))}
    (site / "_cmav_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    installed = _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", wheel],
                     cwd=root)
    assert installed.returncode == 0, installed.stderr
    return env


def test_the_wheel_holds_every_module_and_reference_table(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(REPO)) for package in ("cmav_data", "cmav_models")
                for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts}
    expected |= {f"cmav_data/reference/{p.name}" for p in (REPO / "manifests").iterdir() if p.suffix in (".csv", ".json", ".py")}
    assert expected - names == set()  # pyproject.toml lists the packages: a new one must be added there


def test_installed_wheel_runs_the_cli_on_a_small_tree(venv: Path, tmp_path: Path):
    work = tmp_path / "work"  # outside the checkout, and the cwd of every command
    work.mkdir()
    where = _run([venv / "bin" / "python", "-c", "import cmav_data, json, sys; print(json.dumps([cmav_data.__file__, sys.path]))"],
                 cwd=work)
    assert where.returncode == 0, where.stderr
    module, path = json.loads(where.stdout)
    assert Path(module).is_relative_to(venv), module
    assert not any((work / p).resolve() in (REPO, REPO / "cmav_data", REPO / "manifests") for p in path), path

    # A piece of URMP's own index, and no cmav_index.csv: the committed index is read.
    corpus = work / "URMP"
    make_piece(corpus, "01_Jupiter_vn_vc", seconds=1.0, size="64x36")
    inspected = _run([venv / "bin" / "cmav-data", "inspect-urmp", corpus, "--json", work / "summary.json"], cwd=work)
    assert inspected.returncode == 0 and "Traceback" not in inspected.stderr, inspected.stderr
    assert "01_Jupiter_vn_vc" in (work / "summary.json").read_text()

    built = _run([venv / "bin" / "cmav-data", "build-suburmp", corpus, work / "out", "--quiet"], cwd=work)
    assert built.returncode == 0, built.stderr
    assert len(list((work / "out" / "img").rglob("*.jpg"))) == 2 * 6  # two players, windows ending 0.5..1.0 s

    unknown = _run([venv / "bin" / "cmav-data", "download", "nosuch", work / "dl"], cwd=work)
    assert unknown.returncode == 1 and "known: inis, suburmp, suburmp-demo" in unknown.stderr, unknown.stderr
