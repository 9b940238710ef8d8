"""SIGKILL the runner while tasks run: no committed success re-runs, each interrupted task
re-runs once, no partial artifact is left, and the database stays intact."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from cadenza.store.sqlite import SqliteStore

PIPELINE = '''
import time
from pathlib import Path
from cadenza import Pipeline

MARKS = Path(__file__).with_name("marks.txt")
pipe = Pipeline("killme")

def mark(text):
    with open(MARKS, "a") as handle:
        handle.write(text + "\\n")

def fast(i):
    def task():
        mark(f"run fast{i}")
        return "x" * 40000  # big enough to be a file artifact
    return task

for i in range(6):
    pipe.task(fast(i), name=f"fast{i}")

def slow(i):
    def task():
        mark(f"start slow{i}")
        time.sleep(2.5)
        mark(f"end slow{i}")
        return "y" * 40000 + str(i)
    return task

for i in range(3):
    pipe.task(slow(i), name=f"slow{i}", after=[f"fast{j}" for j in range(6)])

@pipe.task(after=["slow0", "slow1", "slow2"])
def final():
    mark("run final")
    return 1
'''


def _cadenza(home: Path, out: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(out, "wb") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "cadenza", "--home", str(home), *args],
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )


@pytest.mark.parametrize("again", ["resume", "fresh"])
def test_sigkill_mid_run_loses_no_finished_work(tmp_path: Path, again: str) -> None:
    (tmp_path / "pipe.py").write_text(PIPELINE)
    marks = tmp_path / "marks.txt"
    home = tmp_path / ".cadenza"
    out = tmp_path / "runner.out"
    runner = _cadenza(home, out, "run", str(tmp_path / "pipe.py"), "-e", "threads", "-w", "4", "-q")
    deadline = time.monotonic() + 30
    while "start slow" not in (marks.read_text() if marks.exists() else ""):
        assert runner.poll() is None, out.read_text()
        assert time.monotonic() < deadline, "the slow tasks never started"
        time.sleep(0.02)
    time.sleep(0.2)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()

    store = SqliteStore(home / "cadenza.db")
    [run] = store.list_runs()
    assert run.state == "running"  # recorded as running; its dead runner makes it interrupted
    committed = {ti.task for ti in store.task_instances(run.run_id) if ti.state == "success"}
    assert {f"fast{i}" for i in range(6)} <= committed
    store.close()

    args = ["run", str(tmp_path / "pipe.py")]
    if again == "resume":
        args = ["run", "--resume", run.run_id]
    second = _cadenza(home, out, *args, "-e", "threads", "-w", "4", "-q")
    assert second.wait(timeout=60) == 0, out.read_text()

    counts = Counter(marks.read_text().splitlines())
    for i in range(6):
        assert counts[f"run fast{i}"] == 1, counts  # committed successes never re-run
    for i in range(3):
        assert counts[f"end slow{i}"] == 1, counts
        assert counts[f"start slow{i}"] == 2, counts  # interrupted once, re-run once
    assert counts["run final"] == 1

    store = SqliteStore(home / "cadenza.db")
    assert store.integrity_check() == "ok"
    store.close()
    artifacts = home / "artifacts"
    assert not any((artifacts / ".tmp").iterdir())
    files = [p for p in artifacts.glob("??/*")]
    assert files
    for path in files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
