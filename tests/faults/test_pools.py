"""Pools and max_active_runs across runs and runners that share a store.

A pool (``pools={"db": 1}``) bounds its tasks across every run of every runner on the store:
the bodies note ``start`` and ``end`` lines in a side-effect file (each line one append), and
the file must show each start followed by its own end before any other start. A runner
killed (or stopped) while it holds a slot blocks the pool no longer than its claim's
staleness. ``max_active_runs=1`` holds against a run started by hand while the scheduler
ticks. In-process tests run on every store (STORES); those with real `cadenza` processes on
every store processes share (SQLite, and PostgreSQL through ``--db``).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.faults._harness import GUARD, Shared, cadenza, finish, wait_for

from cadenza import Pipeline, ctx
from cadenza.engine.launch import run_pipeline
from cadenza.store.base import effective_state
from cadenza.workspace import Workspace

POOLED = '''
import os
import time
from cadenza import Pipeline, ctx

pipe = Pipeline("pooled", pools={{"db": 1}})


def note(what, name):
    with open({effects!r}, "a") as out:
        out.write(f"{{what}} {{ctx.run_id}} {{name}} {{os.getpid()}}\\n")


def body(name):
    def task():
        note("start", name)
        time.sleep(float(os.environ.get("HOLD", {sleep!r})))
        note("end", name)
        return name
    task.__name__ = task.__qualname__ = name
    return task


for i in range({tasks}):
    pipe.task(cache=False, name=f"t{{i}}", pool="db")(body(f"t{{i}}"))
'''

GUARDED = '''
import os
import time
from datetime import datetime, timedelta, timezone
from cadenza import Pipeline, ctx

start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=3)
pipe = Pipeline("guarded", every="1s", start=start, catchup=False, max_active_runs=1)


def note(what):
    with open({effects!r}, "a") as out:
        out.write(f"{{what}} {{ctx.run_id}} work {{os.getpid()}}\\n")


@pipe.task(cache=False)
def work():
    note("start")
    deadline = time.monotonic() + 60
    while not os.path.exists({release!r}) and time.monotonic() < deadline:
        time.sleep(0.02)
    note("end")
    return 1
'''


def _lines(effects: Path) -> list[tuple[str, str, str, int]]:
    """``(start|end, run id, task, pid)`` for each line of the side-effect file, in order."""
    if not effects.exists():
        return []
    return [(w, r, t, int(p)) for w, r, t, p in
            (line.split() for line in effects.read_text().splitlines())]


def _one_at_a_time(lines: list[tuple[str, str, str, int]]) -> None:
    """Each start is followed by its own end before any other start: never two bodies at
    once, whichever run or process they belong to."""
    inside: tuple[str, str] | None = None
    for what, run_id, task, _ in lines:
        if what == "start":
            assert inside is None, f"{run_id} {task} started while {inside} ran: {lines}"
            inside = (run_id, task)
        else:
            assert inside == (run_id, task), f"{run_id} {task} ended, not {inside}: {lines}"
            inside = None
    assert inside is None, f"{inside} never ended: {lines}"


# -- in one process, every store ---------------------------------------------------------


def test_two_runs_in_one_process_share_a_pool(workspaces: Callable[[], Workspace]) -> None:
    pipe = Pipeline("pooled", pools={"db": 1})
    lines: list[tuple[str, str, str, int]] = []
    lock = threading.Lock()

    def body(name: str) -> Callable[[], str]:
        def task() -> str:
            with lock:
                lines.append(("start", ctx.run_id, name, 0))
            threading.Event().wait(0.05)
            with lock:
                lines.append(("end", ctx.run_id, name, 0))
            return name
        task.__name__ = task.__qualname__ = name
        return task

    for i in range(3):
        pipe.task(cache=False, name=f"t{i}", pool="db")(body(f"t{i}"))

    states: list[str] = []

    def run() -> None:
        ws = workspaces()
        try:
            states.append(run_pipeline(pipe, workspace=ws, executor="threads",
                                       workers=3).state)
        finally:
            ws.close()

    runners = [threading.Thread(target=run) for _ in range(2)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(GUARD)
    assert states == ["success", "success"]
    assert len(lines) == 12
    _one_at_a_time(lines)
    ws = workspaces()
    try:
        assert ws.store.slots() == []  # every slot given back
    finally:
        ws.close()


# -- real `cadenza run` processes, every shared store -------------------------------------


def _pooled(folder: Path, **fields: object) -> tuple[Path, Path]:
    effects = folder / "effects.txt"
    target = folder / "pooled.py"
    target.write_text(POOLED.format(**{"effects": str(effects), "sleep": 0.0, "tasks": 1,
                                       **fields}))
    return target, effects


def test_two_runners_never_run_pooled_tasks_at_once(tmp_path: Path, shared: Shared) -> None:
    target, effects = _pooled(tmp_path, tasks=4, sleep=0.3)
    home = tmp_path / ".cadenza"
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    first = cadenza(home, outs[0], *shared.args, "run", str(target), "-e", "threads", "-q")
    # the second starts once the first holds the pool: it must wait for each slot
    wait_for("the first runner's first task", lambda: len(_lines(effects)) >= 1)
    second = cadenza(home, outs[1], *shared.args, "run", str(target), "-e", "threads", "-q")
    codes = [finish(first, outs[0]), finish(second, outs[1])]
    assert codes == [0, 0], [out.read_text() for out in outs]
    lines = _lines(effects)
    assert len(lines) == 16 and len({pid for *_, pid in lines}) == 2
    _one_at_a_time(lines)
    db = shared.open()
    try:
        assert db.slots() == []
        for run_id in {run_id for _, run_id, _, _ in lines}:
            assert {ti.state for ti in db.task_instances(run_id)} == {"success"}
    finally:
        db.close()


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_runner_gone_with_a_slot_blocks_the_pool_only_until_its_claim_is_stale(
    tmp_path: Path, shared: Shared, how: str
) -> None:
    target, effects = _pooled(tmp_path)
    home = tmp_path / ".cadenza"
    env = {"CADENZA_STALE_AFTER": "1.5"}
    out = tmp_path / "holder.txt"
    holder = cadenza(home, out, *shared.args, "run", str(target), "-q",
                     env={**env, "HOLD": "600"})  # holds the only slot far past the test
    try:
        wait_for("the holder's task", lambda: len(_lines(effects)) == 1)
        # killed: its process has ended on this host, so its claim is stale at once;
        # stopped: its heartbeats stop, and its claim goes stale after 1.5 s
        os.killpg(holder.pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        out2 = tmp_path / "next.txt"
        code = finish(cadenza(home, out2, *shared.args, "run", str(target), "-q", env=env),
                      out2)
        assert code == 0, out2.read_text()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(GUARD)
    lines = _lines(effects)
    assert [(what, pid == holder.pid) for what, _, _, pid in lines] == [
        ("start", True), ("start", False), ("end", False)]
    db = shared.open()
    try:
        first, second = lines[0][1], lines[1][1]
        assert effective_state(db.get_run(first), db.clock(), 1.5) == "interrupted"
        assert db.get_run(second).state == "success"
        assert [s.run_id for s in db.slots()] in ([], [first])  # the dead one's, if any
    finally:
        db.close()


def test_max_active_runs_counts_a_run_started_by_hand(tmp_path: Path, shared: Shared) -> None:
    effects, release = tmp_path / "effects.txt", tmp_path / "release"
    target = tmp_path / "guarded.py"
    target.write_text(GUARDED.format(effects=str(effects), release=str(release)))
    home = tmp_path / ".cadenza"
    out = tmp_path / "manual.txt"
    manual = cadenza(home, out, *shared.args, "run", str(target), "-q")
    scheduler = None
    try:
        wait_for("the manual run's task", lambda: len(_lines(effects)) == 1)
        out2 = tmp_path / "scheduler.txt"
        scheduler = cadenza(home, out2, *shared.args, "scheduler", str(target),
                            "--tick", "0.1", "--grace", "10")
        db = shared.open()
        try:
            def scheduled() -> list[str]:
                return [r.run_id for r in db.list_runs("guarded") if r.logical_date]

            # each tick that created a run then tried to start runs, while the manual one ran
            wait_for("three scheduled runs", lambda: len(scheduled()) >= 3)
            assert len(_lines(effects)) == 1, _lines(effects)  # none of them started
            assert {db.get_run(r).state for r in scheduled()} == {"queued"}
            release.touch()
            assert finish(manual, out) == 0, out.read_text()
            wait_for("a scheduled run to end",
                     lambda: sum(what == "end" for what, *_ in _lines(effects)) >= 2)
        finally:
            db.close()
    finally:
        release.touch()
        if scheduler is not None:
            scheduler.send_signal(signal.SIGTERM)
            finish(scheduler, tmp_path / "scheduler.txt")
        finish(manual, out)
    _one_at_a_time(_lines(effects))  # one run at a time, the manual one and the scheduled
