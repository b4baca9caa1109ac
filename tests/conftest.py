from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout; tests that need it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED

import sys

# Test helpers (tests/urmp_tree.py) import as plain modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))


TINY_DEMO_PIECES = 5  # 5 pieces: several instruments recur (by-recording splits keep them in train and test)


@pytest.fixture(scope="session")
def tiny_demo_urmp(tmp_path_factory, worker_id) -> Path:
    """A tiny demo URMP corpus (5 pieces of 2-4 s, 240x136 video), made once per test session.

    Under pytest-xdist the workers share one copy: the first to take the lock builds it.
    """
    import fcntl

    from cmav_data.demo import DemoOptions, make_demo_urmp
    from cmav_data.parallel import executor_for

    base = tmp_path_factory.getbasetemp()
    root = base.parent if worker_id != "master" else base  # the session's folder shared by the workers
    out = root / "tiny_demo_urmp"
    with open(root / "tiny_demo_urmp.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "demo.json").exists():  # written after every piece is complete
            options = DemoOptions(pieces=TINY_DEMO_PIECES, seconds=(2.0, 4.0), size=(240, 136), seed=0)
            with executor_for(2) as pool:
                make_demo_urmp(out, options, executor=pool, progress=False, force=True)
    return out
