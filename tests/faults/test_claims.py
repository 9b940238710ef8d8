"""A run belongs to exactly one runner: two resumes at once, a stopped runner and its
replacement, two backfills of one range, and a runner whose claim is taken mid-run.

Each test counts task-body executions from a side-effect file the bodies append to
(tests/faults/_harness.py) and asserts: each body at most once per claim, every executed body
recorded, no attempt left ``running``. In-process tests run against every store in STORES
(PostgreSQL on a throwaway cluster, skipped where none can run); the ones with real `cadenza`
processes run against every store processes share (SHARED_STORES: a SQLite file, and a
PostgreSQL database given to each process as `cadenza --db postgresql://...`).
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.faults._harness import (
    DAILY,
    FAN,
    GUARD,
    Shared,
    cadenza,
    chain,
    check_store,
    executions,
    finish,
    wait_for,
    write,
)

from cadenza import Pipeline
from cadenza.engine.launch import run_pipeline
from cadenza.exceptions import ClaimLostError, RunClaimedError
from cadenza.store.base import Batch, MetadataStore
from cadenza.testing.contracts import attempt_record
from cadenza.workspace import Workspace


def _noting(pipe: Pipeline, names: list[str], seen: list[tuple[str, int]],
            fail: threading.Event | None = None) -> None:
    """Tasks ``names`` (independent) that note each execution, with the running thread."""
    for name in names:
        def body(name: str = name) -> str:
            seen.append((name, threading.get_ident()))
            if fail is not None and fail.is_set():
                raise RuntimeError("told to fail")
            return name
        body.__name__ = body.__qualname__ = name
        pipe.task(cache=False, name=name)(body)


def _snapshot(store: MetadataStore, run_id: str) -> tuple[Any, ...]:
    return (store.get_run(run_id), sorted(store.task_instances(run_id), key=repr),
            store.attempts(run_id), store.events(run_id))


# -- in one process, every store ---------------------------------------------------------


def test_a_runner_whose_claim_is_taken_writes_nothing_more(
    workspaces: Callable[[], Workspace]
) -> None:
    pipe = Pipeline("taken")
    started, go = threading.Event(), threading.Event()
    ran: list[str] = []

    @pipe.task(cache=False)
    def first() -> int:
        ran.append("first")
        started.set()
        go.wait(GUARD)
        return 1

    @pipe.task(cache=False)
    def second(first: int) -> int:
        ran.append("second")
        return first

    ws = workspaces()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            run_pipeline(pipe, workspace=ws, executor="threads", workers=2)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    runner = threading.Thread(target=run)
    runner.start()
    assert started.wait(GUARD)
    store = ws.store
    (record,) = store.list_runs()
    # another runner takes the run over, as it may once this one's heartbeat is stale
    assert store.claim_run(record.run_id, "elsewhere:1:thief", stale_after=-1) == 2
    before = _snapshot(store, record.run_id)
    go.set()
    runner.join(GUARD)
    assert not runner.is_alive()
    (error,) = outcome
    assert isinstance(error, ClaimLostError)
    assert (error.run_id, error.owner) == (record.run_id, "elsewhere:1:thief")
    assert ran == ["first"]  # nothing started after the claim was lost
    assert _snapshot(store, record.run_id) == before  # and nothing was written
    assert store.get_run(record.run_id).owner == "elsewhere:1:thief"
    ws.close()


def test_two_resumes_at_once_run_each_task_once(
    workspaces: Callable[[], Workspace]
) -> None:
    pipe = Pipeline("twice")
    seen: list[tuple[str, int]] = []
    fail = threading.Event()
    fail.set()
    names = [f"t{i:02d}" for i in range(40)]
    _noting(pipe, names, seen, fail)
    ws = workspaces()
    first = run_pipeline(pipe, workspace=ws)
    assert first.state == "failed"
    ws.close()
    fail.clear()
    seen.clear()
    results: list[object] = []
    barrier = threading.Barrier(2)

    def resume() -> None:
        mine = workspaces()
        try:
            barrier.wait(GUARD)
            results.append(run_pipeline(pipe, workspace=mine, resume=first.run_id).state)
        except RunClaimedError as busy:
            results.append(busy)
        finally:
            mine.close()

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert "success" in results, results
    for other in results:
        assert other == "success" or isinstance(other, RunClaimedError)
    assert Counter(name for name, _ in seen) == Counter(names)  # each ran once in all
    ws = workspaces()
    try:
        attempts = ws.store.attempts(first.run_id)
        assert Counter((a.task, a.attempt, a.state) for a in attempts) == Counter(
            [(name, 1, "failed") for name in names] + [(name, 2, "success") for name in names]
        )
    finally:
        ws.close()


def test_a_resume_takes_over_a_silent_owner_and_closes_its_attempts(
    workspaces: Callable[[], Workspace]
) -> None:
    pipe = Pipeline("silent")
    seen: list[tuple[str, int]] = []
    fail = threading.Event()
    fail.set()
    _noting(pipe, ["only"], seen, fail)
    ws = workspaces()
    run_id = run_pipeline(pipe, workspace=ws).run_id
    fail.clear()
    store = ws.store
    # a runner on another host took the run, started attempt 2, and went silent
    epoch = store.claim_run(run_id, "elsewhere:1:silent")
    assert epoch is not None
    store.apply(Batch(attempts=[attempt_record("only", 2, run_id)]), (run_id, epoch))
    with pytest.raises(RunClaimedError) as busy:  # alive, as far as anyone can tell
        run_pipeline(pipe, workspace=ws, resume=run_id)
    assert busy.value.owner == "elsewhere:1:silent"
    assert "elsewhere:1:silent" in str(busy.value) and run_id in str(busy.value)
    assert seen == [("only", threading.get_ident())]  # the first run's, failed

    wait_for("its heartbeat to be 0.05 s old on the store's clock",
             lambda: store.clock() - (store.get_run(run_id).heartbeat or 0) > 0.05)
    result = run_pipeline(pipe, workspace=ws, resume=run_id, stale_after=0.05)
    assert result.state == "success"
    attempts = {a.attempt: a for a in store.attempts(run_id, "only")}
    assert [attempts[n].state for n in (1, 2, 3)] == ["failed", "interrupted", "success"]
    assert "taken over" in (attempts[2].error or "")
    run = store.get_run(run_id)
    assert (run.state, run.owner, run.epoch) == ("success", None, epoch + 1)
    claimed = [e for e in store.events(run_id) if e.kind == "run_claimed"]
    assert [e.data["epoch"] for e in claimed] == [epoch + 1]
    ws.close()


def test_a_resume_numbers_attempts_after_every_recorded_one(
    workspaces: Callable[[], Workspace]
) -> None:
    pipe = Pipeline("numbered")
    fail = threading.Event()
    fail.set()

    @pipe.task(cache=False)
    def items() -> list[int]:
        return [0, 1, 2]

    @pipe.task(cache=False, map_over="items")
    def each(items: int) -> int:
        if items == 1 and fail.is_set():
            raise RuntimeError("told to fail")
        return items

    @pipe.task(cache=False, after=["each"])
    def late() -> int:
        return 1

    ws = workspaces()
    run_id = run_pipeline(pipe, workspace=ws).run_id
    store = ws.store
    # a runner before this one wrote an attempt of `late` and died before its task row
    epoch = store.claim_run(run_id, "elsewhere:1:gone")
    assert epoch is not None
    store.apply(Batch(attempts=[attempt_record("late", 1, run_id)]), (run_id, epoch))
    store.release_run(run_id, "elsewhere:1:gone", epoch)
    fail.clear()
    assert run_pipeline(pipe, workspace=ws, resume=run_id).state == "success"
    found = {(a.task, a.map_index, a.attempt): a.state for a in store.attempts(run_id)}
    assert found == {
        ("items", -1, 1): "success",
        ("each", 0, 1): "success", ("each", 1, 1): "failed", ("each", 1, 2): "success",
        ("each", 2, 1): "success",
        ("late", -1, 1): "interrupted", ("late", -1, 2): "success",
    }
    ws.close()


# -- real processes, a store they share --------------------------------------------------


def test_two_resumes_started_together(tmp_path: Path, shared: Shared) -> None:
    target, effects = write(tmp_path, FAN, tasks=200)
    home = tmp_path / ".cadenza"
    (tmp_path / "fail").touch()
    out = tmp_path / "first.txt"
    assert finish(cadenza(home, out, *shared.args, "run", str(target), "-q"), out) == 1
    run_id = executions(effects)[0].run_id
    (tmp_path / "fail").unlink()
    effects.unlink()
    outs = [tmp_path / f"resume{i}.txt" for i in range(2)]
    resumes = [cadenza(home, out, *shared.args, "run", "--resume", run_id, "-q")
               for out in outs]
    codes = [finish(p, out) for p, out in zip(resumes, outs, strict=True)]
    found = executions(effects)
    assert sorted(codes) in ([0, 0], [0, 1]), [out.read_text() for out in outs]
    for code, out in zip(codes, outs, strict=True):
        if code == 1:  # refused: it names the live owner, and ran nothing
            assert "is being run by" in out.read_text()
    assert Counter(e.task for e in found) == Counter(f"t{i:03d}" for i in range(200))
    db = shared.open()
    try:
        check_store(db, run_id, found)
        assert {ti.state for ti in db.task_instances(run_id)} == {"success"}
        assert db.get_run(run_id).owner is None  # given up at the end
    finally:
        db.close()


def test_a_stopped_runner_is_taken_over_and_stops_without_writing(
    tmp_path: Path, shared: Shared
) -> None:
    target, effects = write(tmp_path, chain(12), sleep=0.3)
    home = tmp_path / ".cadenza"
    env = {"CADENZA_STALE_AFTER": "1.5"}
    out = tmp_path / "stopped.txt"
    first = cadenza(home, out, *shared.args, "run", str(target), "-q", env=env)
    try:
        wait_for("the third task to start", lambda: len(executions(effects)) >= 3)
        os.kill(first.pid, signal.SIGSTOP)
        stopped_at = executions(effects)
        run_id = stopped_at[0].run_id
        db = shared.open()
        try:
            # past the staleness on the store's clock, a resume may take the run over
            wait_for("the claim to go stale",
                     lambda: db.clock() - (db.get_run(run_id).heartbeat or 0) > 1.5)
            out2 = tmp_path / "replacement.txt"
            code = finish(cadenza(home, out2, *shared.args, "run", "--resume", run_id, "-q",
                                  env=env), out2)
            assert code == 0, out2.read_text()
            after_replacement = _snapshot(db, run_id)
        finally:
            db.close()
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert finish(first, out) == 1
    said = out.read_text()
    assert f"Run {run_id} was taken over by" in said and "Traceback" not in said
    found = executions(effects)
    db = shared.open()
    try:
        assert _snapshot(db, run_id) == after_replacement  # the stopped runner wrote nothing
        check_store(db, run_id, found)
        assert {ti.state for ti in db.task_instances(run_id)} == {"success"}
        by_runner = Counter(e.pid for e in found)
        assert len(by_runner) == 2 and by_runner[first.pid] == len(stopped_at)
        # the task the stopped runner was in ran again, under the new claim; nothing after it
        # ran in the stopped runner once it was continued
        assert [e.task for e in found if e.pid == first.pid] == [
            f"c{i:02d}" for i in range(len(stopped_at))]
        again = {e.task for e in found if e.pid != first.pid}
        assert again == {f"c{i:02d}" for i in range(len(stopped_at) - 1, 12)} or again == {
            f"c{i:02d}" for i in range(len(stopped_at) - 2, 12)}  # its row may be unwritten
        run = db.get_run(run_id)
        assert (run.state, run.epoch, run.owner) == ("success", 2, None)
    finally:
        db.close()


def test_two_backfills_of_one_range_at_once(tmp_path: Path, shared: Shared) -> None:
    target, effects = write(tmp_path, DAILY)
    home = tmp_path / ".cadenza"
    outs = [tmp_path / f"backfill{i}.txt" for i in range(2)]
    runs = [cadenza(home, out, *shared.args, "backfill", str(target), "--start",
                    "2026-01-01", "--end", "2026-01-21", "--parallel", "2", "--json",
                    cwd=tmp_path)
            for out in outs]
    codes = [finish(p, out) for p, out in zip(runs, outs, strict=True)]
    assert codes == [0, 0], [out.read_text() for out in outs]
    found = executions(effects)
    db = shared.open()
    try:
        records = db.list_runs("daily", limit=100)
        assert len(records) == 20
        assert {r.state for r in records} == {"success"}
        ran = Counter((e.run_id, e.task) for e in found)
        assert ran == Counter({(r.run_id, task): 1 for r in records
                               for task in ("extract", "load")})
        for record in records:
            check_store(db, record.run_id, found)
    finally:
        db.close()


def test_a_resume_of_a_live_run_is_refused_before_the_pipeline_is_imported(
    tmp_path: Path, shared: Shared
) -> None:
    target, effects = write(tmp_path, chain(2), sleep=1.0)
    imports = tmp_path / "imports.txt"
    target.write_text(f"open({str(imports)!r}, 'a').write('imported\\n')\n" + target.read_text())
    home = tmp_path / ".cadenza"
    out = tmp_path / "first.txt"
    first = cadenza(home, out, *shared.args, "run", str(target), "-q")
    try:
        wait_for("the first task to start", lambda: bool(executions(effects)))
        run_id = executions(effects)[0].run_id
        out2 = tmp_path / "second.txt"
        assert finish(cadenza(home, out2, *shared.args, "run", "--resume", run_id), out2) == 1
        said = out2.read_text()
        assert said.count("\n") == 1 and said.startswith("error: ")
        assert f"Run {run_id} is being run by '" in said and f":{first.pid}:" in said
        assert imports.read_text() == "imported\n"  # only the first runner imported it
    finally:
        assert finish(first, out) == 0, out.read_text()
    db = shared.open()
    try:
        check_store(db, run_id, executions(effects))
        assert [e.task for e in executions(effects)] == ["c00", "c01"]
    finally:
        db.close()


def test_a_resume_that_cannot_start_gives_its_claim_up(tmp_path: Path) -> None:
    pipe = Pipeline("unstartable")
    _noting(pipe, ["only"], [])
    ws = Workspace.memory(tmp_path)
    run_id = run_pipeline(pipe, workspace=ws).run_id
    with pytest.raises(Exception, match="needs a workspace on disk"):
        run_pipeline(pipe, workspace=ws, resume=run_id, executor="processes")
    assert ws.store.get_run(run_id).owner is None  # free for the next resume
    assert run_pipeline(pipe, workspace=ws, resume=run_id).state == "success"
