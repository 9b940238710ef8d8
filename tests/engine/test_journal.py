"""The journal: what each commit writes, and which rows may wait for a later one."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

from cadenza import Pipeline
from cadenza.engine import journal as journal_module
from cadenza.engine.attempt import store_bytes
from cadenza.engine.cache import sha256
from cadenza.engine.journal import Instance, Journal
from cadenza.engine.states import TaskState
from cadenza.store.base import Batch
from cadenza.store.sqlite import SqliteStore

S = TaskState


class _Recorder:
    """A store that keeps a copy of each batch it is given, as a database would."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def apply(self, batch: Batch) -> None:
        self.batches.append(copy.deepcopy(batch))


def _journal() -> tuple[Journal, _Recorder]:
    store = _Recorder()
    return Journal(store, "r-1", []), store  # type: ignore[arg-type]


def test_an_instance_changed_twice_is_written_once_as_it_ends() -> None:
    journal, store = _journal()
    ti = Instance("a", -1, S.RUNNING, attempt=1)
    journal.instance(ti)
    ti.state = S.SUCCESS
    journal.instance(ti)
    journal.commit()
    [batch] = store.batches
    assert [(t.task, t.state, t.attempt) for t in batch.task_instances] == [("a", "success", 1)]


def test_an_attempt_updated_in_place_is_written_again() -> None:
    journal, store = _journal()
    ti = Instance("a", -1, S.RUNNING, attempt=1, started=1.0)
    record = journal.attempt(ti, "running", "/logs/a/1.log")
    journal.commit()
    record.state, record.ended_at = "success", 2.0
    journal.update(record)
    journal.commit()
    assert [[(a.state, a.ended_at) for a in b.attempts] for b in store.batches] == [
        [("running", None)], [("success", 2.0)]]
    assert journal.made == {("a", -1, 1): record}


def test_a_queued_instance_is_written_in_its_last_recorded_state() -> None:
    journal, store = _journal()
    ti = Instance("a", -1, S.UP_FOR_RETRY, attempt=1)
    journal.instance(ti)
    ti.state = S.QUEUED  # queued is the loop's own business
    journal.commit()
    assert store.batches[0].task_instances[0].state == "up_for_retry"


def test_pending_rows_wait_for_a_full_commit_unless_they_move_on() -> None:
    journal, store = _journal()
    waits, runs = Instance("waits", -1), Instance("runs", -1)
    journal.instance(waits)
    journal.instance(runs)
    assert journal.due() is not None
    journal.commit()  # early: so that a task may start
    assert store.batches == []  # nothing but young pending rows: no transaction at all
    runs.state = S.RUNNING
    journal.instance(runs)
    journal.commit()
    assert [t.task for t in store.batches[0].task_instances] == ["runs"]
    journal.commit(final=True)
    assert [(t.task, t.state) for t in store.batches[1].task_instances] == [("waits", "pending")]
    assert journal.due() is None


def test_pending_rows_are_written_once_they_are_old(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "WAITING_COMMIT", 0.0)
    journal, store = _journal()
    journal.instance(Instance("waits", -1))
    journal.commit()
    assert [t.state for t in store.batches[0].task_instances] == ["pending"]


def test_a_slow_task_sees_its_pending_siblings_in_the_store(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pending rows show the tasks not started yet; they reach the store within WAITING_COMMIT
    monkeypatch.setattr(journal_module, "WAITING_COMMIT", 0.05)
    pipe = Pipeline("waiting_rows")
    seen: dict[str, str] = {}

    @pipe.task
    def slow(ctx: Any) -> int:
        time.sleep(0.3)
        store = SqliteStore(ctx.home / "cadenza.db")
        try:
            seen.update({t.task: t.state for t in store.task_instances(ctx.run_id)})
        finally:
            store.close()
        return 1

    @pipe.task
    def after(slow: int) -> int:
        return slow

    result = pipe.run(home=home, executor="threads", workers=2)
    assert result.ok, result
    assert seen == {"after": "pending", "slow": "running"}


def test_every_task_has_a_row_when_the_run_ends(home: Path) -> None:
    pipe = Pipeline("all_rows")
    for i in range(5):
        pipe.task(lambda: 1, name=f"t{i}")
    result = pipe.run(home=home)
    store = SqliteStore(home / "cadenza.db")
    try:
        rows = {t.task: t.state for t in store.task_instances(result.run_id)}
        attempts = store.attempts(result.run_id)
    finally:
        store.close()
    assert rows == dict.fromkeys([f"t{i}" for i in range(5)], "success")
    assert [(a.task, a.state) for a in attempts] == [
        (a.task, a.state) for t in result.tasks.values() for a in t.attempts]


class _SubmitOnly:
    """A synchronous executor without ``call``: the loop must go through its Future."""

    max_workers = 1
    synchronous = True

    def __init__(self) -> None:
        from cadenza.executors import InlineExecutor

        self._inline = InlineExecutor()
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any) -> Any:
        self.submitted += 1
        return self._inline.submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        pass


def test_an_executor_without_call_is_submitted_to(home: Path) -> None:
    pipe = Pipeline("submitted")

    @pipe.task
    def one() -> int:
        return 1

    @pipe.task
    def two(one: int) -> int:
        raise ValueError(f"two got {one}")

    executor = _SubmitOnly()
    result = pipe.run(home=home, executor=executor)
    assert executor.submitted == 2
    assert {n: t.state for n, t in result.tasks.items()} == {"one": "success", "two": "failed"}
    assert "two got 1" in (result.tasks["two"].error or "")


def test_tiny_values_hash_as_sha256() -> None:
    for data in (b"1", b"null", b"1", b"x" * 64, b"y" * 65):
        assert store_bytes(None, "json", data).hash == sha256(data)  # type: ignore[arg-type]
