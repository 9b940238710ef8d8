"""The run loop on the processes executor: crashes and timeouts end one attempt, never the
runner, and always free the worker slot."""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import time
from pathlib import Path

from cadenza import Pipeline, Retry, ctx


def crash_pipeline(count: int) -> Pipeline:
    pipe = Pipeline("crashy")

    def make(i: int):  # type: ignore[no-untyped-def]
        def task() -> None:
            if i % 3 == 0:
                faulthandler.disable()  # pytest's dump would only be noise here
                ctypes.string_at(0)  # segfault
            elif i % 3 == 1:
                os._exit(3)
            else:
                os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer does

        return task

    for i in range(count):
        pipe.task(make(i), name=f"crash{i}")

    @pipe.task
    def survivor() -> str:
        return "alive"

    return pipe


def test_twenty_crashing_tasks_each_fail_and_the_run_finishes(home: Path) -> None:
    result = crash_pipeline(20).run(home=home, executor="processes", workers=2)
    assert result.state == "failed"
    assert result.output("survivor") == "alive"
    for i in range(20):
        task = result.tasks[f"crash{i}"]
        assert task.state == "failed", (i, task)
        assert task.attempts[0].state == "crashed"
        assert "worker process running this task" in (task.error or "")
    assert "SIGSEGV" in (result.tasks["crash0"].error or "")


def test_timeout_kills_the_process_and_retries(home: Path) -> None:
    pipe = Pipeline("hung")

    @pipe.task(timeout=0.5, retries=Retry(1, backoff=0), cache=False)
    def hung() -> str:
        if ctx.attempt == 1:
            time.sleep(60)
        return "second try"

    started = time.monotonic()
    result = pipe.run(home=home, executor="processes", workers=1)
    assert time.monotonic() - started < 30  # the 60 s sleep was cut short
    assert result.ok
    assert [a.state for a in result.tasks["hung"].attempts] == ["timeout", "success"]
    assert result.output("hung") == "second try"


def test_values_travel_between_processes(home: Path) -> None:
    pipe = Pipeline("values")

    @pipe.task
    def numbers() -> list[int]:
        return list(range(10))

    @pipe.task(map_over="numbers")
    def double(numbers: int) -> int:
        return numbers * 2

    @pipe.task
    def big(double: list[int]) -> str:
        return "z" * 100_000 + str(sum(double))

    @pipe.task
    def tail(big: str) -> str:
        return big[-2:]

    result = pipe.run(home=home, executor="processes", workers=2)
    assert result.ok, result
    assert result.output("tail") == "90"
    assert result.output("double") == [2 * i for i in range(10)]
