"""SlaClock: which deadlines passed, and which tasks missed them."""

from __future__ import annotations

import time

from cadenza import Pipeline
from cadenza.engine.journal import Instance
from cadenza.engine.sla import SlaClock
from cadenza.engine.states import TaskState
from cadenza.store.base import RunRecord


def _pipe() -> Pipeline:
    pipe = Pipeline("p", sla="1h")

    @pipe.task(sla="10m")
    def load() -> int:
        return 1

    @pipe.task
    def skipped(load: int) -> int:
        return load

    return pipe


def test_deadlines_count_from_the_interval_end_or_the_creation() -> None:
    pipe = _pipe()
    manual = SlaClock(pipe, pipe.graph(), RunRecord("r", "p", "running", {}, 1000.0))
    assert manual.next() == 1000.0 + 600
    scheduled = SlaClock(pipe, pipe.graph(), RunRecord(
        "r", "p", "running", {}, 5.0, interval_end="1970-01-01T00:20:00+00:00"))
    assert scheduled.next() == 1200.0 + 600


def test_only_passed_deadlines_that_someone_missed_are_reported() -> None:
    pipe = _pipe()
    now = time.time()
    clock = SlaClock(pipe, pipe.graph(), RunRecord("r", "p", "running", {}, now - 7200))
    instances = {"load": Instance("load", -1, TaskState.RUNNING),
                 "skipped": Instance("skipped", -1, TaskState.SKIPPED)}
    misses = list(clock.missed(instances.__getitem__))
    assert [(m.task, m.late, m.sla) for m in misses] == [("load", ["load"], 600.0),
                                                         (None, ["load"], 3600.0)]
    assert clock.next() is None and list(clock.missed(instances.__getitem__)) == []


def test_a_task_done_in_time_is_not_late() -> None:
    pipe = _pipe()
    now = time.time()
    clock = SlaClock(pipe, pipe.graph(), RunRecord("r", "p", "running", {}, now - 7200))
    done = Instance("load", -1, TaskState.SUCCESS, ended=now - 7000)
    instances = {"load": done, "skipped": Instance("skipped", -1, TaskState.SKIPPED)}
    assert list(clock.missed(instances.__getitem__)) == []
