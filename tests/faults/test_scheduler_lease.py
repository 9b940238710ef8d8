"""A paused scheduler and its successor, and a scheduler killed with kill -9, with real
`cadenza scheduler` processes.

Scheduler A (a short lease, a short claim staleness) is stopped with SIGSTOP while its runs are
in flight; scheduler B takes the lease over once it has run out, and the runs once their claims
are stale; A is then continued. A must find that it lost the lease and its runs' claims (its
writes are refused: ClaimLostError), stop in one line, and end, while B finishes every run.
The bodies note each execution in a side-effect file (tests/faults/_harness.py); the test
asserts each body ran at most once per claim, every executed body is recorded, no attempt is
left ``running``, and no interval has two runs. The kill -9 variant asserts the same after
B takes over from a dead A.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.faults._harness import (
    GUARD,
    Shared,
    cadenza,
    check_store,
    executions,
    finish,
    wait_for,
)
from tests.faults.test_storage import write_lock

from cadenza.store.base import RunRecord

TICKING = '''
import os
import time
from datetime import datetime, timedelta, timezone
from cadenza import Pipeline, ctx

start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=4)
pipe = Pipeline("ticking", every="2s", start=start, catchup=True, max_active_runs=3)


def note(name):
    with open({effects!r}, "a") as out:
        out.write(f"{{ctx.run_id}} {{name}} {{os.getpid()}}\\n")
    time.sleep(0.4)


@pipe.task(cache=False)
def extract():
    note("extract")
    return 1


@pipe.task(cache=False)
def load(extract):
    note("load")
    return extract + 1
'''
LEASE = "1.5"
STALE = "2"
"""Seconds: the lease and the claims' staleness, short so that B takes over soon."""
ENV = {"CADENZA_STALE_AFTER": STALE, "CADENZA_SCHEDULER_LEASE": LEASE}


@dataclass
class Project:
    """The ticking pipeline's file and side-effect file, the folder its schedulers run in, and
    the store they share (``db``)."""

    home: Path
    target: Path
    effects: Path
    db: Shared


def _project(tmp_path: Path, db: Shared | None = None) -> Project:
    """The project in ``tmp_path``; its store is ``db``, by default a SQLite file in it."""
    effects = tmp_path / "effects.txt"
    (tmp_path / "ticking.py").write_text(TICKING.format(effects=str(effects)))
    home = tmp_path / ".cadenza"
    return Project(home, tmp_path / "ticking.py", effects,
                   db or Shared((), str(home / "cadenza.db")))


def _scheduler(p: Project, out: Path, *more: str) -> subprocess.Popen[bytes]:
    return cadenza(p.home, out, *p.db.args, "scheduler", str(p.target), *more, "--tick", "0.1",
                   "--grace", "20", "--max-runs", "3", env=ENV)


def _successor(p: Project, out: Path) -> subprocess.Popen[bytes]:
    """Start B as a supervisor would: again and again while the lease is A's."""
    deadline = time.monotonic() + GUARD
    while True:
        process = _scheduler(p, out)
        try:
            process.wait(1.0)  # refused at once while A holds the lease
        except subprocess.TimeoutExpired:
            return process  # serving
        assert "Another scheduler" in out.read_text(), out.read_text()
        assert time.monotonic() < deadline, out.read_text()


def _running(db: Shared, pid: int) -> list[str]:
    """The runs a process owns that are running."""
    if not db.exists():
        return []
    store = db.open()
    try:
        return [r.run_id for r in store.list_runs("ticking", 1000)
                if r.state == "running" and f":{pid}:" in (r.owner or "")]
    finally:
        store.close()


def _check(p: Project) -> None:
    """Every run's checks (tests/faults/_harness.py), and one run per interval."""
    store = p.db.open()
    try:
        runs = store.list_runs("ticking", 1000)
        per_interval = Counter(r.interval_start for r in runs)
        assert per_interval and max(per_interval.values()) == 1, per_interval
        found = executions(p.effects)
        for run in runs:
            check_store(store, run.run_id, found)
        assert {r.state for r in runs} <= {"success", "queued"}, [(r.run_id, r.state)
                                                                    for r in runs]
    finally:
        store.close()


def _end(*processes: subprocess.Popen[bytes] | None) -> None:
    """Kill what a test left running, stopped (SIGSTOP) or not."""
    for process in processes:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGCONT)
            process.kill()
            process.wait()


def _stop(process: subprocess.Popen[bytes], out: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert finish(process, out) == 0, out.read_text()


def test_a_paused_scheduler_loses_its_lease_and_runs_and_writes_nothing(
        tmp_path: Path, shared: Shared) -> None:
    p = _project(tmp_path, shared)
    out_a, out_b = tmp_path / "a.out", tmp_path / "b.out"
    first = _scheduler(p, out_a)
    second: subprocess.Popen[bytes] | None = None
    try:
        held = _pause_with_runs(p.db, first)
        second = _successor(p, out_b)
        wait_for("B to take over A's runs", lambda: not _running(p.db, first.pid))
        os.killpg(first.pid, signal.SIGCONT)
        assert finish(first, out_a) == 2, out_a.read_text()  # A stops, in one line
        text = out_a.read_text()
        assert "Traceback" not in text, text
        assert "lost the store's lease" in text, text
        store = p.db.open()
        try:  # B owns (or finished) every run A had in flight
            states = {rid: store.get_run(rid) for rid in held}
        finally:
            store.close()
        wait_for("B to finish A's runs", lambda: all(
            r.state == "success" for r in _fresh(p.db, held)))
        assert all(r.epoch >= 2 for r in states.values())  # each was claimed again
        _stop(second, out_b)
        assert "Traceback" not in out_b.read_text()
    finally:
        _end(first, second)
    _check(p)


def _pause_with_runs(db: Shared, process: subprocess.Popen[bytes]) -> list[str]:
    """SIGSTOP ``process`` at a moment it has runs in flight; return their ids."""
    for _ in range(20):
        wait_for("A to run task bodies", lambda: bool(_running(db, process.pid)))
        os.killpg(process.pid, signal.SIGSTOP)
        held = _running(db, process.pid)
        if held:
            return held
        os.killpg(process.pid, signal.SIGCONT)  # its runs ended meanwhile: another moment
    raise AssertionError("A never had a run in flight when it was stopped")


def _fresh(db: Shared, run_ids: list[str]) -> list[RunRecord]:
    store = db.open()
    try:
        return [store.get_run(rid) for rid in run_ids]
    finally:
        store.close()


def test_a_scheduler_killed_with_kill_9_is_replaced_at_once(tmp_path: Path,
                                                            shared: Shared) -> None:
    p = _project(tmp_path, shared)
    out_a, out_b = tmp_path / "a.out", tmp_path / "b.out"
    first = _scheduler(p, out_a)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for("A to run task bodies", lambda: bool(_running(p.db, first.pid)))
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        held = _running(p.db, first.pid)
        second = _scheduler(p, out_b)  # a dead holder's lease is free at once
        wait_for("B to finish A's runs", lambda: all(
            r.state == "success" for r in _fresh(p.db, held)))
        _stop(second, out_b)
        assert "Traceback" not in out_b.read_text()
    finally:
        _end(first, second)
    _check(p)


LOCKED = '''
import os
import time
from pathlib import Path
from cadenza import Pipeline

pipe = Pipeline("locked", schedule="0 * * * *")


@pipe.task(cache=False)
def first():
    gate = Path({gate!r})
    with open({effects!r}, "a") as out:
        out.write(f"run first {{os.getpid()}}\\n")
    Path(f"{{gate}}.started").touch()
    while not Path(f"{{gate}}.go").exists():  # until the test holds the store's write lock
        time.sleep(0.01)
    return 1


@pipe.task(cache=False)
def second(first):
    return first + 1
'''


def test_a_store_locked_under_a_run_is_one_line_and_the_scheduler_goes_on(
        tmp_path: Path) -> None:
    effects, gate = tmp_path / "effects.txt", tmp_path / "gate"
    (tmp_path / "locked.py").write_text(LOCKED.format(effects=str(effects), gate=str(gate)))
    home, out = tmp_path / ".cadenza", tmp_path / "scheduler.out"
    db = Shared((), str(home / "cadenza.db"))
    process = cadenza(home, out, "scheduler", str(tmp_path / "locked.py"), "--tick", "0.1",
                      env={"CADENZA_DB_TIMEOUT": "0.3", "CADENZA_STALE_AFTER": "1"})
    try:
        wait_for("the run's first task", Path(f"{gate}.started").exists)
        with write_lock(home / "cadenza.db"):
            Path(f"{gate}.go").touch()  # its result is committed into the lock
            wait_for("the run to stop on the lock", lambda: "stopped:" in out.read_text())
        store = db.open()
        try:
            [run] = store.list_runs("locked")
        finally:
            store.close()
        wait_for("the run to be resumed and succeed",
                 lambda: _fresh(db, [run.run_id])[0].state == "success")
        _stop(process, out)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = out.read_text()
    assert "Traceback" not in text, text
    stopped = [line for line in text.splitlines() if "stopped:" in line]
    assert len(stopped) == 1 and "stayed locked" in stopped[0], text
    assert stopped[0].startswith(f"error: locked: run {run.run_id} stopped:"), text
    store = db.open()
    try:
        check_store(store, run.run_id, executions(effects))
    finally:
        store.close()


def test_a_bad_lease_is_one_line_naming_it(tmp_path: Path) -> None:
    p = _project(tmp_path)
    for args, env, words in (
        (["--lease", "0"], {}, "--lease 0 is not"),
        ([], {"CADENZA_SCHEDULER_LEASE": "soon"}, "CADENZA_SCHEDULER_LEASE='soon'"),
        (["--lease", "0.5", "--tick", "1"], {}, "must outlast a tick"),
    ):
        out = tmp_path / "bad.out"
        out.unlink(missing_ok=True)
        process = cadenza(p.home, out, "scheduler", str(p.target), *args, env=env)
        assert finish(process, out) == 2, out.read_text()
        text = out.read_text()
        assert "Traceback" not in text, text
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and words in errors[0], text


def test_a_standby_scheduler_waits_and_takes_over_a_paused_one(tmp_path: Path,
                                                               shared: Shared) -> None:
    # Two hosts each run `cadenza scheduler --standby`: the second waits (it does not exit)
    # while the first serves, and serves once the first's lease runs out.
    p = _project(tmp_path, shared)
    out_a, out_b = tmp_path / "a.out", tmp_path / "b.out"
    first = _scheduler(p, out_a)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for("A to run task bodies", lambda: bool(_running(p.db, first.pid)))
        second = _scheduler(p, out_b, "--standby")
        wait_for("B to stand by", lambda: "standing by" in out_b.read_text())
        assert second.poll() is None and "serving" not in out_b.read_text()
        held = _pause_with_runs(p.db, first)
        wait_for("B to serve", lambda: "serving ticking" in out_b.read_text())
        wait_for("B to finish A's runs", lambda: all(
            r.state == "success" for r in _fresh(p.db, held)))
        os.killpg(first.pid, signal.SIGCONT)
        assert finish(first, out_a) == 2, out_a.read_text()  # A lost the lease: one line
        _stop(second, out_b)
        assert "Traceback" not in out_b.read_text()
    finally:
        _end(first, second)
    _check(p)
