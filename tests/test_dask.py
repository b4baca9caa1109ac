"""Builds on a real Dask LocalCluster give the same bytes as a serial build, even when a worker dies."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from cmav_data.parallel import executor_for
from cmav_data.recipes.build import RunFlags
from cmav_data.recipes.suburmp import SubUrmpOptions, build_suburmp
from test_suburmp import _tree_digest, write_odd_crop_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def odd_crops(tiny_demo_urmp: Path, tmp_path_factory) -> Path:
    return write_odd_crop_table(tiny_demo_urmp, tmp_path_factory.mktemp("crops") / "crops.csv")


@pytest.fixture(scope="module")
def serial_build(tiny_demo_urmp: Path, odd_crops: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serial") / "out"
    build_suburmp(tiny_demo_urmp, out, SubUrmpOptions(), crop_table=odd_crops, run=RunFlags(progress=False))
    return out


def test_dask_build_is_byte_identical(tiny_demo_urmp: Path, odd_crops: Path, serial_build: Path, tmp_path: Path):
    with executor_for(2, "dask") as executor:
        workers = executor.client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers.values())
        # Workers pin math libraries to one thread.
        assert set(executor.client.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()) == {"1"}
        build_suburmp(tiny_demo_urmp, tmp_path / "out", SubUrmpOptions(), crop_table=odd_crops, executor=executor,
                      run=RunFlags(workers=2, progress=False))
    assert _tree_digest(tmp_path / "out") == _tree_digest(serial_build)


def test_killed_worker_is_retried_and_bytes_are_identical(tiny_demo_urmp: Path, odd_crops: Path, serial_build: Path,
                                                          tmp_path: Path):
    out = tmp_path / "out"
    with executor_for(2, "dask") as executor:
        client = executor.client
        pids = client.run(os.getpid)
        errors: list[BaseException] = []

        def build() -> None:
            try:
                build_suburmp(tiny_demo_urmp, out, SubUrmpOptions(), crop_table=odd_crops, executor=executor,
                              run=RunFlags(progress=False))
            except BaseException as e:  # noqa: BLE001 - reported by the assertion below
                errors.append(e)

        thread = threading.Thread(target=build)
        thread.start()
        killed = None
        deadline = time.monotonic() + 60
        while killed is None and time.monotonic() < deadline and thread.is_alive():
            busy = [w for w, tasks in client.processing().items() if any("_build_piece" in t for t in tasks)]
            if busy:
                killed = pids[busy[0]]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        thread.join(timeout=300)
        assert killed is not None, "no worker was caught building"
        assert not errors, errors
    assert _tree_digest(out) == _tree_digest(serial_build)


def test_dask_feature_extraction_is_byte_identical(serial_build: Path, tmp_path: Path):
    from cmav_data.features.specs import make_spec
    from cmav_data.features.store import extract_features

    spec = make_spec("lms", ())
    copies = []
    for name in ("serial", "dask"):
        copy = tmp_path / name
        shutil.copytree(serial_build, copy)
        copies.append(copy)
    serial = extract_features(copies[0], spec, shard_size=64, progress=False)
    with executor_for(2, "dask") as executor:
        on_dask = extract_features(copies[1], spec, shard_size=64, executor=executor, progress=False)
    assert serial.n_shards > 2 and serial.out_dir.name == on_dask.out_dir.name  # same cache key
    assert _tree_digest(serial.out_dir) == _tree_digest(on_dask.out_dir)
