"""The threads executor: a call past its timeout cannot be stopped, so the run says so and ends
instead of waiting for it, keeping the slots that call holds until it returns."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

from cadenza import Pipeline
from cadenza.engine.launch import run_pipeline
from cadenza.executors import ThreadExecutor

GUARD = 30.0  # a guard against hangs, not a timing goal


def _pipeline(release: threading.Event) -> Pipeline:
    pipe = Pipeline("held", pools={"db": 1})

    @pipe.task(pool="db", timeout=0.2, cache=False)
    def hang() -> None:
        release.wait()  # past its timeout, for as long as the test likes

    @pipe.task(pool="db", cache=False)
    def waits() -> str:
        return "ran"

    @pipe.task(cache=False)
    def free() -> str:
        return "ran"

    @pipe.task(cache=False)
    def after(waits: str) -> str:
        return waits

    return pipe


def test_a_hung_thread_holding_a_pool_ends_the_run_failed_instead_of_forever(home: Path) -> None:
    release = threading.Event()
    found: dict[str, object] = {}
    left: list[str] = []

    def run() -> None:
        found["result"] = run_pipeline(_pipeline(release), home=home, executor="threads",
                                       workers=4, still_running=left)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(GUARD)
    try:
        assert not runner.is_alive(), "the run waited for a thread that ran past its timeout"
    finally:
        release.set()
    result = found["result"]
    assert result.state == "failed"
    states = {name: task.state for name, task in result.tasks.items()}
    assert states == {"hang": "failed", "waits": "cancelled", "free": "success",
                      "after": "upstream_failed"}
    assert "is still running in its thread, which cannot be stopped" in result.tasks["hang"].error
    assert "was stopped" not in result.tasks["hang"].error
    assert result.tasks["waits"].error == (
        "Task 'waits' could not start: pool 'db' is held by 'hang', which ran past its timeout "
        "and is still running in its thread (a thread cannot be stopped). Resume the run once "
        "it has returned."
    )
    assert left == ["hang"]


def test_every_worker_thread_held_by_a_timed_out_call_ends_the_run(home: Path) -> None:
    release = threading.Event()
    pipe = Pipeline("busy")

    @pipe.task(timeout=0.2, cache=False)
    def hang() -> None:
        release.wait()

    @pipe.task(after=["hang"], trigger_rule="all_done", cache=False)
    def later() -> str:
        return "ran"

    found: dict[str, object] = {}
    runner = threading.Thread(target=lambda: found.update(result=run_pipeline(
        pipe, home=home, executor=ThreadExecutor(1))), daemon=True)
    runner.start()
    runner.join(GUARD)
    try:
        assert not runner.is_alive()
    finally:
        release.set()
    result = found["result"]
    assert result.state == "failed"
    assert result.tasks["later"].state == "cancelled"
    assert "every worker thread is held by 'hang'" in result.tasks["later"].error


HELD = """
import time
from cadenza import Pipeline

pipe = Pipeline("held", pools={"db": 1})

@pipe.task(pool="db", timeout=0.2, cache=False)
def hang():
    time.sleep(600)

@pipe.task(pool="db", cache=False)
def waits():
    return 1
"""


def test_the_cli_exits_at_once_and_names_the_thread_left_running(tmp_path: Path) -> None:
    (tmp_path / "held.py").write_text(HELD)
    done = subprocess.run(
        [sys.executable, "-m", "cadenza", "--home", str(tmp_path / ".cadenza"), "run",
         str(tmp_path / "held.py"), "-e", "threads", "-q"],
        capture_output=True, text=True, timeout=GUARD,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "task hang was still running in a thread" in done.stderr
    assert "failed" in done.stdout


def test_a_call_that_held_the_gil_past_its_timeout_is_not_said_to_be_stopped(home: Path) -> None:
    pipe = Pipeline("gil")

    @pipe.task(timeout=0.05, cache=False)
    def backtrack() -> bool:
        # one C call that holds the GIL for a while: the run loop cannot turn until it returns
        return re.match(r"(a+)+b", "a" * 24) is not None

    result = run_pipeline(pipe, home=home, executor="threads")
    error = result.tasks["backtrack"].error
    assert result.state == "failed"
    assert "ran past its timeout of 0.05s on attempt 1 and took" in error
    assert "was stopped" not in error and "still running" not in error
