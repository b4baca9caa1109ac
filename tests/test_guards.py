"""Guards against losing data or writing half-done output: locks, path checks, umask, OS errors."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmav_data.locking import LOCK_NAME, OutputLocked, output_lock
from cmav_data.parallel import executor_for
from cmav_data.recipes.build import BuildError, RunFlags
from cmav_data.recipes.inis import build_inis
from cmav_data.recipes.suburmp import build_suburmp
from urmp_tree import make_piece, write_index

HOLD = """
import sys, time
from cmav_data.locking import output_lock
with output_lock(sys.argv[1], "hold-test"):
    print("locked", flush=True)
    time.sleep(60)
"""


def _hold_lock(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


# ---------------------------------------------------------------- one writer per output


def test_lock_names_the_holder_and_a_dead_holders_lock_is_taken_over(tmp_path: Path):
    holder = _hold_lock(tmp_path / "out")
    try:
        with pytest.raises(OutputLocked) as refused:
            with output_lock(tmp_path / "out", "second"):
                pass
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and str(tmp_path / "out") in message and "\n" not in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "out" / LOCK_NAME).exists()  # left behind by the kill: stale, taken over silently
    with output_lock(tmp_path / "out", "second"):
        assert (tmp_path / "out" / LOCK_NAME).read_text().startswith(f"{os.getpid()} second")
    assert not (tmp_path / "out" / LOCK_NAME).exists()


FORK_AND_HOLD = """
import os, sys, time
from cmav_data.locking import output_lock
with output_lock(sys.argv[1], "hold-test"):
    if os.fork() == 0:  # a worker forked while the lock is held outlives its parent
        os.write(1, b"worker\\n")  # after fork's at-fork hooks have run here; one write: lines never interleave
        time.sleep(60)
        os._exit(0)
    os.write(1, b"locked\\n")
    time.sleep(60)
"""


def test_a_forked_worker_does_not_keep_a_killed_parents_lock(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", FORK_AND_HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert {proc.stdout.readline().strip() for _ in range(2)} == {"locked", "worker"}
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with output_lock(tmp_path, "after"):  # the worker still runs, the lock is free
            pass
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


def _pool_workers(pid: int) -> list[int]:
    """The spawned process-pool workers among ``pid``'s children (not its resource tracker)."""
    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"multiprocessing.spawn" in cmdline:
            workers.append(int(stat.parent.name))
    return workers


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_pool_workers_exit_soon_after_their_parent_is_killed(tmp_path: Path):
    # Four 20 s pieces on two workers are several seconds of queued work each: without the exit-with-
    # parent watch, the orphans go on rendering (seen: a killed corpus run's workers started new pieces).
    cmd = [*CLI, "make-demo-urmp", str(tmp_path / "demo"), "--pieces", "4", "--seconds", "20-20", "--size",
           "160x90", "-j", "2", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(workers := _pool_workers(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2, "the pool's two workers should have started"
        time.sleep(1.0)  # the pieces are submitted and rendering
        proc.send_signal(signal.SIGKILL)  # no handler runs: the workers must notice on their own
        proc.wait()
        deadline = time.monotonic() + 3
        while any(map(_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_running, workers)), "a killed run's pool workers still run"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    # Run again with --force: the killed run's half-written files and its lock file do not outlive it.
    subprocess.run([*cmd, "--force"], check=True, capture_output=True)
    assert not [p for p in (tmp_path / "demo").rglob("*") if p.name.startswith((".tmp-", LOCK_NAME))]


def test_make_demo_force_sweeps_a_killed_runs_temporaries_and_waits_for_no_live_writer(tmp_path: Path):
    from click.testing import CliRunner

    from cmav_data.cli import main

    out = tmp_path / "demo"
    args = ["make-demo-urmp", str(out), "--pieces", "1", "--seconds", "2-2", "--size", "64x64", "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (piece,) = (p for p in out.iterdir() if p.is_dir())
    # What a SIGKILL leaves mid-write: a temporary beside the file it would have replaced.
    (piece / f".tmp-{next(piece.glob('Vid_*')).name}.x1y2.mp4").write_bytes(b"half a video")
    (out / ".tmp-demo.json.4242").write_bytes(b"{")
    with output_lock(out, "make-demo-urmp"):  # a live writer: its temporaries are not leftovers
        refused = CliRunner().invoke(main, [*args, "--force"])
    assert refused.exit_code == 1
    assert f"{out} is being written by another cmav process (pid {os.getpid()}, make-demo-urmp)" in refused.output
    assert (out / ".tmp-demo.json.4242").exists()
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == first


# ---------------------------------------------------------------- builds never write into their inputs

PIECES = {"01_Tiny_vn_vc": 1.5, "02_Other_vn_fl": 1.2, "03_Third_vc_fl": 1.0}
CLI = [sys.executable, "-m", "cmav_data.cli"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("guards") / "URMP"
    for folder, seconds in PIECES.items():
        make_piece(root, folder, seconds=seconds, size="96x40")
    write_index(root)
    return root


@pytest.fixture(scope="module")
def built(tree: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("guards_built") / "suburmp"
    build_suburmp(tree, out, run=RunFlags(progress=False))
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("guards_imagenet") / "imagenet"
    for c, wnid in enumerate(("n04536866", "n02992211")):
        (root / "train" / wnid).mkdir(parents=True)
        for n in range(3):
            grid = np.random.default_rng(10 * c + n).integers(0, 256, (5, 5, 3), dtype=np.uint8)
            Image.fromarray(grid).resize((160, 120)).save(root / "train" / wnid / f"{wnid}_{n}.JPEG")
    return root


def _digest(root: Path, exclude: tuple[str, ...] = ("build.json",)) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in exclude}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _one_line_error(proc: subprocess.CompletedProcess, *expected: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_overwrite_never_deletes_the_input_it_reads(tree: Path, built: Path, photos: Path, tmp_path: Path):
    # The four cases of the issue, each of which deleted its input; the first one through the CLI.
    urmp = _copy(tree, tmp_path / "data" / "URMP")
    sibling = tmp_path / "data" / "notes.txt"
    sibling.write_text("mine\n")
    sub = _copy(built, tmp_path / "sub")
    img = _copy(photos, tmp_path / "img")
    before = {p: _digest(p, exclude=()) for p in (urmp, sub, img)}
    cli = subprocess.run(CLI + ["build-suburmp", str(urmp), str(urmp), "--overwrite", "--quiet"],
                         capture_output=True, text=True)
    _one_line_error(cli, f"{urmp}: OUT is the input URMP_DIR")
    with pytest.raises(BuildError, match="OUT holds the input URMP_DIR"):
        build_suburmp(urmp, urmp.parent, run=RunFlags(overwrite=True, progress=False))
    with pytest.raises(BuildError, match="OUT is the input --sounds"):
        build_inis(img, sub, sub, run=RunFlags(overwrite=True, progress=False))
    with pytest.raises(BuildError, match="OUT is the input IMAGENET_DIR"):
        build_inis(img, img, sub, run=RunFlags(overwrite=True, progress=False))
    assert {p: _digest(p, exclude=()) for p in (urmp, sub, img)} == before
    assert sibling.read_text() == "mine\n"


def test_out_inside_an_input_or_its_files_is_refused_without_overwrite(tree: Path, built: Path, photos: Path,
                                                                      tmp_path: Path):
    split_file = tmp_path / "splits.csv"
    split_file.write_text("recording,split\n")
    with pytest.raises(BuildError, match="OUT lies inside the input URMP_DIR"):
        build_suburmp(tree, tree / "out", run=RunFlags(progress=False))
    assert not (tree / "out").exists()
    with pytest.raises(BuildError, match="OUT holds the input --split-file"):
        build_suburmp(tree, tmp_path, split_file=split_file, run=RunFlags(progress=False))
    link = tmp_path / "link"
    link.symlink_to(built, target_is_directory=True)  # the same folder under another name
    with pytest.raises(BuildError, match="OUT is the input --sounds"):
        build_inis(photos, link, built, run=RunFlags(progress=False))


def test_overwrite_deletes_only_a_cmav_build_and_never_through_a_link(tree: Path, built: Path, tmp_path: Path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work\n")
    with pytest.raises(BuildError, match="holds no cmav build"):
        build_suburmp(tree, mine, run=RunFlags(overwrite=True, progress=False))
    assert (mine / "thesis.tex").read_text() == "years of work\n"

    target = _copy(built, tmp_path / "target")
    link = tmp_path / "out-link"
    link.symlink_to(target, target_is_directory=True)
    with pytest.raises(BuildError, match="symbolic link"):
        build_suburmp(tree, link, run=RunFlags(overwrite=True, progress=False))
    assert _digest(target, exclude=()) == _digest(built, exclude=())

    # A cmav build is overwritten (a stray link inside it is removed, not followed).
    out = _copy(built, tmp_path / "again")
    (out / "img" / "link-to-mine").symlink_to(mine, target_is_directory=True)
    build_suburmp(tree, out, run=RunFlags(overwrite=True, progress=False))
    assert _digest(out) == _digest(built) and (mine / "thesis.tex").exists()


# ---------------------------------------------------------------- a second writer is refused, the first finishes


def _stopped_when(cmd: list[str], ready) -> subprocess.Popen:
    """Start ``cmd`` and freeze it (SIGSTOP) as soon as ``ready(proc)`` holds: it then holds its
    lock, mid-way, with its temporaries in flight, for as long as the test needs."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not ready(proc):
        assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGSTOP)
    return proc


def _holds_lock(folder: Path):
    def ready(proc: subprocess.Popen) -> bool:  # the pid is written once the flock is held
        try:
            return (folder / LOCK_NAME).read_text().startswith(f"{proc.pid} ")
        except FileNotFoundError:
            return False

    return ready


def _second_is_refused(first: subprocess.Popen, cmd: list[str], folder: Path) -> None:
    temporaries = sorted(p for p in folder.rglob(".tmp-*"))
    second = subprocess.run(cmd, capture_output=True, text=True)
    _one_line_error(second, str(folder), f"pid {first.pid}")
    assert sorted(p for p in folder.rglob(".tmp-*")) == temporaries  # the first one's in-flight files are untouched
    first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=120) == 0, first.stderr.read()


def test_two_builds_into_one_out(tree: Path, built: Path, tmp_path: Path):
    out = tmp_path / "out"
    cmd = CLI + ["build-suburmp", str(tree), str(out), "--quiet"]
    units = out / ".cmav-build" / "units"
    first = _stopped_when(cmd, lambda _: units.is_dir() and any(units.iterdir()))
    _second_is_refused(first, cmd + ["--resume"], out)
    assert _digest(out) == _digest(built)
    assert not (out / LOCK_NAME).exists()


def test_two_publishes_into_one_folder(built: Path, tmp_path: Path):
    from cmav_data.shards import publish

    reference = tmp_path / "reference"
    publish(built, reference, shard_size=20_000, progress=False)
    out = tmp_path / "hub"
    cmd = CLI + ["publish", str(built), str(out), "--shard-size", "20KB", "--quiet"]
    first = _stopped_when(cmd, _holds_lock(out))
    _second_is_refused(first, cmd, out)
    assert _digest(out, exclude=(".cmav-state.json",)) == _digest(reference, exclude=(".cmav-state.json",))  # mtimes


def test_two_feature_extractions_into_one_folder(built: Path, tmp_path: Path):
    from cmav_data.features.specs import make_spec
    from cmav_data.features.store import extract_features

    # The reference backend: the second process is refused before it imports librosa (the fast one's
    # cache key needs torch), which keeps the test short.
    reference = _copy(built, tmp_path / "reference")
    result = extract_features(reference, make_spec("lms", ()), "reference", shard_size=8, progress=False)
    dataset = _copy(built, tmp_path / "dataset")
    folder = dataset / result.out_dir.relative_to(reference)
    cmd = CLI + ["extract-features", str(dataset), "--kind", "lms", "--backend", "reference", "--shard-size", "8",
                 "--quiet"]
    first = _stopped_when(cmd, _holds_lock(folder))
    _second_is_refused(first, cmd, folder)
    assert _digest(folder, exclude=()) == _digest(result.out_dir, exclude=())


def test_build_inis_holds_its_out_lock(built: Path, photos: Path, tmp_path: Path):
    holder = _hold_lock(tmp_path / "inis")
    try:
        with pytest.raises(OutputLocked, match=f"pid {holder.pid}"):
            build_inis(photos, tmp_path / "inis", built, run=RunFlags(progress=False))
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(tmp_path / "inis") == [LOCK_NAME]  # the stale lock of the killed holder, nothing else


# ---------------------------------------------------------------- files respect the umask


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_every_file_written_respects_the_umask(tree: Path, tmp_path: Path, umask: int, mode: int):
    from cmav_data.demo import DemoOptions, make_demo_urmp
    from cmav_data.features.specs import make_spec
    from cmav_data.features.store import extract_features
    from cmav_data.shards import publish
    from cmav_data.stats import dataset_stats

    previous = os.umask(umask)
    try:
        make_demo_urmp(tmp_path / "demo", DemoOptions(pieces=1, seconds=(2.0, 2.0), size=(64, 64)), progress=False)
        build_suburmp(tree, tmp_path / "sub", run=RunFlags(progress=False))
        dataset_stats(tmp_path / "sub")  # stats.md and a matplotlib PNG
        extract_features(tmp_path / "sub", make_spec("lms", ()), "fast", progress=False)
        publish(tmp_path / "sub", tmp_path / "hub", progress=False)
    finally:
        os.umask(previous)
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in tmp_path.rglob("*") if p.is_file()}
    for must in ("demo/demo.json", "sub/manifest.parquet", "sub/contact_sheet.png", "hub/index.json"):
        assert must in modes
    assert {path for path, m in modes.items() if m != oct(mode)} == set(), modes


# ---------------------------------------------------------------- OS errors: one line, and resumable


def _file_size_limit(limit: int):
    # Python ignores SIGXFSZ, so a write past RLIMIT_FSIZE fails with EFBIG, as on a full disk.
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_file_size_limit_in_a_build_is_one_line_and_resumable(tree: Path, built: Path, tmp_path: Path):
    out = tmp_path / "out"
    cmd = CLI + ["build-suburmp", str(tree), str(out), "--quiet"]
    limited = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_file_size_limit(60_000))
    line = _one_line_error(limited, "File too large", "--resume")  # a sound chunk (88 kB) is over the limit
    assert f"{out}/chunk/" in line and ".tmp-" not in line
    assert not list(out.rglob(".tmp-*"))  # the partial file is gone, nothing else is lost
    subprocess.run(cmd + ["--resume"], check=True)
    assert _digest(out) == _digest(built)


def test_file_size_limit_in_publish_is_one_line_and_a_rerun_finishes(built: Path, tmp_path: Path):
    from cmav_data.shards import publish

    publish(built, tmp_path / "reference", shard_size=200_000, progress=False)
    out = tmp_path / "hub"
    cmd = CLI + ["publish", str(built), str(out), "--shard-size", "200KB", "--quiet"]
    limited = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_file_size_limit(100_000))
    line = _one_line_error(limited, "File too large")
    assert f"{out}/data/" in line and ".parquet" in line and ".tmp-" not in line
    assert not (out / "index.json").exists() and not list(out.rglob(".tmp-*"))
    subprocess.run(cmd, check=True)
    state = (".cmav-state.json",)  # holds mtimes
    assert _digest(out, exclude=state) == _digest(tmp_path / "reference", exclude=state)


def _as_unprivileged_user() -> list[str]:
    """The command prefix that runs a command as nobody when we are root (as in CI), else nothing."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv (util-linux) is absent: cannot drop the privileges")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_unreadable_piece_folder_is_a_named_failure(tree: Path, tmp_path: Path):
    import tempfile

    as_user = _as_unprivileged_user()
    shared = Path(tempfile.mkdtemp(prefix="cmav-guards-"))  # pytest's tmp_path is private to root
    try:
        shared.chmod(0o777)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(shared / "numba"), "HOME": str(shared)}
        probe = subprocess.run(as_user + [sys.executable, "-c", "import cmav_data.recipes.suburmp"],
                               capture_output=True, text=True, env=env)
        if probe.returncode != 0:
            pytest.skip(f"the checkout cannot be imported as an unprivileged user: {probe.stderr.strip()[-200:]}")
        urmp = _copy(tree, shared / "URMP")
        locked = urmp / "02_Other_vn_fl"
        locked.chmod(0o000)
        expected = f"{locked}: cannot read the folder (permission denied)"
        run = functools.partial(subprocess.run, capture_output=True, text=True, env=env)
        cli = as_user + CLI
        strict = run(cli + ["build-suburmp", str(urmp), str(shared / "a"), "--quiet"])
        assert strict.returncode == 1 and expected in strict.stderr and "Traceback" not in strict.stderr, strict.stderr
        tolerant = run(cli + ["build-suburmp", str(urmp), str(shared / "b"), "--quiet", "--fault-tolerant"])
        assert tolerant.returncode == 1 and "Traceback" not in tolerant.stderr, tolerant.stderr
        assert [f"{f['path']}: {f['cause']}" for f in map(json.loads, (shared / "b" / "failures.jsonl").open())] == [expected]
        inspect = run(cli + ["inspect-urmp", str(urmp), "--quiet", "--strict"])
        assert inspect.returncode == 1 and expected in inspect.stdout and "Traceback" not in inspect.stderr, inspect.stderr
    finally:
        for path in shared.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(shared)


ENOSPC_SCRIPT = """
set -e
mount -t tmpfs -o size=400k tmpfs "$1"
set +e
"$2" -m cmav_data.cli build-suburmp "$3" "$1/out" --quiet 2> "$4/stderr"
echo $? > "$4/rc"
set -e
mount -o remount,size=64m "$1"
"$2" -m cmav_data.cli build-suburmp "$3" "$1/out" --quiet --resume
cp -a "$1/out" "$4/out"
"""


def test_full_disk_in_a_build_is_one_line_and_resumable(tree: Path, built: Path, tmp_path: Path):
    # A real ENOSPC: a 400 kB tmpfs mounted in a mount namespace of the test's own (needs root).
    (tmp_path / "disk").mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {tmp_path / 'disk'}"],
                           capture_output=True, text=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("cannot mount a small tmpfs in a private mount namespace (needs root and unshare)")
    subprocess.run(["unshare", "-m", "sh", "-c", ENOSPC_SCRIPT, "sh", str(tmp_path / "disk"), sys.executable,
                    str(tree), str(tmp_path)], check=True)
    stderr = (tmp_path / "stderr").read_text()
    assert (tmp_path / "rc").read_text().strip() == "1" and len(stderr.strip().splitlines()) == 1, stderr
    assert f"{tmp_path / 'disk' / 'out'}/" in stderr and "No space left on device" in stderr and "--resume" in stderr
    assert _digest(tmp_path / "out") == _digest(built)



def test_make_demo_force_never_touches_a_folder_that_is_not_a_demo_corpus(tmp_path: Path):
    from cmav_data.demo.corpus import make_demo_urmp
    from cmav_data.demo.errors import DemoError
    from cmav_data.demo.plan import DemoOptions

    urmp = tmp_path / "URMP"  # a real URMP copy's piece folder, which a demo plan never holds
    make_piece(urmp, "44_Quintet_vn_vn_va_vc_db", 1.0)
    before = {p: p.read_bytes() for p in urmp.rglob("*") if p.is_file()}
    with pytest.raises(DemoError, match="not a demo corpus made by make-demo-urmp"):
        make_demo_urmp(urmp, DemoOptions(pieces=1, seconds=(2.0, 2.0), size=(64, 64)), progress=False, force=True)
    assert {p: p.read_bytes() for p in urmp.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------- -j 1 computes as a pool's workers do

def _math_threads(_item: int) -> tuple[list[int], int]:
    import threadpoolctl
    import torch

    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()], torch.get_num_threads()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every library runs one thread anyway")
def test_work_run_in_this_process_has_one_math_thread_like_a_pool_worker():
    # A float reduction split over threads can round differently (seen: the reference LMS of -j 1 one
    # float32 step off -j 2's in 1 value of 45,000), so -j 1 must compute single-threaded too.
    import threadpoolctl
    import torch

    from cmav_data.progress import progress_map

    before = ([lib["num_threads"] for lib in threadpoolctl.threadpool_info()], torch.get_num_threads())
    assert max(before[0]) > 1 or before[1] > 1, "this process should start with more than one math thread"
    (blas, torch_threads), = progress_map(_math_threads, [0], None, enabled=False)
    assert set(blas) == {1} and torch_threads == 1
    with executor_for(2) as pool:
        (pool_blas, pool_torch), = progress_map(_math_threads, [0], pool, enabled=False)
    assert set(pool_blas) == {1} and pool_torch == 1
    assert ([lib["num_threads"] for lib in threadpoolctl.threadpool_info()], torch.get_num_threads()) == before
