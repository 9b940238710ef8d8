"""Storage faults, from outside, with real processes: a write lock another process holds, a full
disk (a small tmpfs), a damaged copy and a copy without its -wal file, many processes opening a
new store at once, and the -wal file's size under a reader that never stops reading."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cadenza.store.base import Batch, Event
from cadenza.store.sqlite import WAL_LIMIT, SqliteStore

GUARD = 60.0
"""Seconds a command may take before the test fails: a guard against hangs, not a timing goal."""

PIPELINE = """
import os, time
from pathlib import Path
from cadenza import Pipeline

pipe = Pipeline("store_faults")

@pipe.task(cache=False)
def first() -> int:
    gate = os.environ.get("GATE")
    if gate:  # say it started, then wait until the test has taken the write lock
        Path(gate + ".started").touch()
        while not Path(gate + ".go").exists():
            time.sleep(0.01)
    return 1

@pipe.task(cache=False)
def second(first: int) -> int:
    return first + 1
"""

FILLER = """
from cadenza import Pipeline

pipe = Pipeline("filler")

@pipe.task(cache=False, outputs={"big": "big.bin"})
def fill(ctx) -> int:
    with open(ctx.outputs["big"], "wb") as out:
        for _ in range(200):  # 12 MiB, on a 2 MiB disk
            out.write(b"x" * 65536)
    return 1
"""


def project(root: Path, source: str = PIPELINE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipe.py").write_text(textwrap.dedent(source))
    return root


def cadenza(cwd: Path, *args: str, timeout: float | None = 2.0, **env: str
            ) -> subprocess.CompletedProcess[str]:
    """``python -m cadenza ARGS`` in ``cwd``; ``timeout`` is CADENZA_DB_TIMEOUT."""
    extra = {"CADENZA_DB_TIMEOUT": str(timeout)} if timeout is not None else {}
    return subprocess.run(
        [sys.executable, "-m", "cadenza", *args], cwd=cwd, capture_output=True, text=True,
        timeout=GUARD, env={**os.environ, "COLUMNS": "200", **extra, **env},
    )


def one_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The single ``error:`` line a failed command printed (exit 2, no traceback)."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    found = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(found) == 1, done.stderr
    for word in words:
        assert word in found[0], found[0]
    return found[0]


@contextmanager
def write_lock(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process in BEGIN IMMEDIATE on ``db`` until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1], isolation_level=None)
            db.execute("BEGIN IMMEDIATE")
            print("held", flush=True)
            sys.stdin.read()  # until the test closes it
        """), str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(GUARD)
        holder.stdout.close()


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + GUARD
    while not path.exists():
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.01)


# -- a write lock held by another process ------------------------------------------------------


def test_readers_need_no_write_lock(tmp_path: Path) -> None:
    work = project(tmp_path / "p")
    assert cadenza(work, "run", "pipe.py").returncode == 0
    db = work / ".cadenza" / "cadenza.db"
    with write_lock(db):
        for args in (["runs"], ["status", "latest"], ["logs", "latest", "first"]):
            done = cadenza(work, *args, timeout=0.2)
            assert done.returncode == 0, done.stderr
            assert "store_faults" in done.stdout or args[0] == "logs"
        store = SqliteStore(db, readonly=True, timeout=0.2)
        try:
            assert [r.state for r in store.list_runs()] == ["success"]
        finally:
            store.close()


def test_a_writer_that_cannot_get_the_lock_fails_in_one_line(tmp_path: Path) -> None:
    work = project(tmp_path / "p")
    assert cadenza(work, "run", "pipe.py").returncode == 0
    db = work / ".cadenza" / "cadenza.db"
    with write_lock(db):
        line = one_error(cadenza(work, "run", "pipe.py", timeout=0.3),
                         repr(str(db)), "0.3 s", "CADENZA_DB_TIMEOUT")
        one_error(cadenza(work, "pause", "store_faults", timeout=0.3), "locked")
    assert "stayed locked by another process" in line
    runs = cadenza(work, "runs", "--json")
    assert runs.returncode == 0


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_a_lock_taken_during_a_run_ends_it_in_one_line(tmp_path: Path, executor: str) -> None:
    work = project(tmp_path / "p")
    assert cadenza(work, "run", "pipe.py").returncode == 0  # the store exists
    gate = tmp_path / "gate"
    runner = subprocess.Popen(
        [sys.executable, "-m", "cadenza", "run", "pipe.py", "--executor", executor], cwd=work,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CADENZA_DB_TIMEOUT": "0.3", "GATE": str(gate)},
    )
    try:
        wait_for(Path(f"{gate}.started"))
        with write_lock(work / ".cadenza" / "cadenza.db"):
            Path(f"{gate}.go").touch()
            out, err = runner.communicate(timeout=GUARD)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    one_error(subprocess.CompletedProcess(runner.args, runner.returncode, out, err),
              "stayed locked", "CADENZA_DB_TIMEOUT")


def test_a_writer_waits_for_a_lock_released_within_its_timeout(tmp_path: Path) -> None:
    work = project(tmp_path / "p")
    assert cadenza(work, "run", "pipe.py").returncode == 0
    db = work / ".cadenza" / "cadenza.db"
    with write_lock(db):
        runner = subprocess.Popen(
            [sys.executable, "-m", "cadenza", "run", "pipe.py"], cwd=work, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "CADENZA_DB_TIMEOUT": "30"},
        )
        time.sleep(1.0)  # let it meet the lock (a pause, not a timing assertion)
    out, err = runner.communicate(timeout=GUARD)
    assert runner.returncode == 0, out + err


def test_the_scheduler_fails_in_one_line_on_a_held_lock(tmp_path: Path) -> None:
    work = project(tmp_path / "p", PIPELINE.replace(
        'Pipeline("store_faults")', 'Pipeline("store_faults", schedule="* * * * *")'))
    assert cadenza(work, "run", "pipe.py").returncode == 0
    with write_lock(work / ".cadenza" / "cadenza.db"):
        one_error(cadenza(work, "scheduler", "pipe.py", "--once", timeout=0.3), "locked")


def test_a_bad_timeout_is_one_line_naming_it(tmp_path: Path) -> None:
    work = project(tmp_path / "p")
    for bad in ("soon", "-1", "nan"):
        one_error(cadenza(work, "runs", CADENZA_DB_TIMEOUT=bad, timeout=None),
                  f"CADENZA_DB_TIMEOUT={bad!r}")


# -- a full disk -----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, mounted for the test (root only)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root (mount -t tmpfs -o size=2m)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_task_that_fills_the_disk_leaves_no_partial_output(small_disk: Path) -> None:
    work = project(small_disk / "p", FILLER)
    done = cadenza(work, "run", "pipe.py")
    assert done.returncode in (1, 2), done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "No space left" in done.stdout + done.stderr
    assert not (work / "big.bin").exists()  # cut short: removed, not left at its final path
    assert not list((work / ".cadenza" / "artifacts" / ".tmp").iterdir())
    assert cadenza(work, "status", "latest").returncode == 0  # and the failure was recorded


def test_a_store_on_a_full_disk_fails_in_one_line(small_disk: Path) -> None:
    work = project(small_disk / "p")
    assert cadenza(work, "run", "pipe.py").returncode == 0
    filler = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # take every byte that is left
        while os.write(filler, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(filler)
    for args in (["run", "pipe.py"], ["runs"]):
        one_error(cadenza(work, *args), "No space is left on the disk holding",
                  repr(str(work / ".cadenza" / "cadenza.db")))
    (small_disk / "filler").unlink()
    assert cadenza(work, "run", "pipe.py").returncode == 0


# -- damaged files ---------------------------------------------------------------------------


def _runs_page(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'"
                                ).fetchone()[0])


def test_a_damaged_copy_is_one_line_and_never_written(tmp_path: Path) -> None:
    work = project(tmp_path / "p")
    for _ in range(3):
        assert cadenza(work, "run", "pipe.py").returncode == 0
    db = work / ".cadenza" / "cadenza.db"
    good = db.read_bytes()
    page = _runs_page(db)
    copy = project(tmp_path / "copy")
    (copy / ".cadenza").mkdir()
    damaged = bytearray(good)
    damaged[(page - 1) * 4096:page * 4096] = b"\xde\xad\xbe\xef" * 1024  # mid-file
    (copy / ".cadenza" / "cadenza.db").write_bytes(bytes(damaged))
    for args in (["runs"], ["run", "pipe.py"], ["status", "latest"]):
        one_error(cadenza(copy, *args), "is damaged", "will not write", ".recover")
    marker = copy / ".cadenza" / "cadenza.db-damaged"
    assert marker.exists()  # a writer in any process checks again first
    one_error(cadenza(copy, "run", "pipe.py"), "is damaged")
    assert (copy / ".cadenza" / "cadenza.db").read_bytes() == bytes(damaged)  # untouched
    (copy / ".cadenza" / "cadenza.db").write_bytes(good)  # restored from a backup
    assert cadenza(copy, "run", "pipe.py").returncode == 0
    assert not marker.exists()


def test_a_copy_without_its_wal_file_is_one_line(tmp_path: Path) -> None:
    work = project(tmp_path / "p")
    db = work / ".cadenza" / "cadenza.db"
    opened = SqliteStore(db)  # open all along (the UI): the writes stay in the -wal file
    gate = tmp_path / "gate"
    runner = subprocess.Popen(
        [sys.executable, "-m", "cadenza", "run", "pipe.py"], cwd=work, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "GATE": str(gate)},
    )
    try:
        wait_for(Path(f"{gate}.started"))
        copy = project(tmp_path / "copy")
        (copy / ".cadenza").mkdir()
        shutil.copy(db, copy / ".cadenza" / "cadenza.db")  # mid-run, and not cadenza.db-wal
        Path(f"{gate}.go").touch()
        out, err = runner.communicate(timeout=GUARD)
        assert runner.returncode == 0, out + err
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        opened.close()
    assert _tables(copy / ".cadenza" / "cadenza.db") == []  # they are in the -wal file
    for args in (["runs"], ["run", "pipe.py"]):
        one_error(cadenza(copy, *args), "cadenza.db-wal", ".backup")


def _tables(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    try:
        return [name for (name,) in conn.execute("SELECT name FROM sqlite_master")]
    finally:
        conn.close()


# -- many processes opening a new store at once ----------------------------------------------

OPEN_AT = """
import sys, time
from cadenza.store.sqlite import SqliteStore
at = float(sys.argv[2])
while time.time() < at:
    pass
store = SqliteStore(sys.argv[1])
assert store.list_runs() == []
store.close()
"""


def test_many_processes_open_a_new_store_at_once(tmp_path: Path) -> None:
    failures: list[str] = []
    for round_ in range(4):
        db = tmp_path / f"round{round_}" / "cadenza.db"
        at = time.time() + 1.0  # time enough for every process to start and wait
        openers = [subprocess.Popen([sys.executable, "-c", OPEN_AT, str(db), str(at)],
                                    stderr=subprocess.PIPE, text=True) for _ in range(12)]
        for opener in openers:
            err = opener.communicate(timeout=GUARD)[1]
            if opener.returncode:
                failures.append(err.strip().splitlines()[-1])
    assert failures == []


# -- the -wal file under a reader that never stops ---------------------------------------------

READER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
while True:  # brief read transactions, one after another, as the UI's requests make them
    db.execute("BEGIN")
    db.execute("SELECT count(*) FROM events").fetchone()
    time.sleep(0.002)
    db.execute("COMMIT")
"""


def test_the_wal_file_stays_bounded_under_a_busy_reader(tmp_path: Path) -> None:
    db = tmp_path / "cadenza.db"
    store = SqliteStore(db)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(db)])
    wal = Path(f"{db}-wal")
    largest = 0
    try:
        for i in range(3000):  # ~60 MiB of pages without a checkpoint that completes
            store.apply(Batch(events=[Event("r", "k", 1.0, "t", -1, {"x": "y" * 500})
                                      for _ in range(20)]))
            if i % 25 == 0:
                largest = max(largest, wal.stat().st_size)
        assert reader.poll() is None  # it read all along
    finally:
        reader.kill()
        reader.wait()
        store.close()
    # Bounded, not exact: on a loaded machine the writer may add a few checkpoints' worth of
    # pages before one completes (28 MiB seen under a full test suite); without checkpoints
    # the file grew to 66-95 MiB in this loop.
    assert largest < 3 * WAL_LIMIT, largest
    assert not wal.exists() or wal.stat().st_size < WAL_LIMIT
