"""ProcessExecutor with real worker processes: results, errors, crashes, kill and shutdown."""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, wait
from pathlib import Path

import pytest

from cadenza.exceptions import InvalidOptionError, SerializationError, WorkerCrashedError
from cadenza.executors import Executor, Killable
from cadenza.executors.processes import ProcessExecutor

TIMEOUT = 30  # a guard against hangs, not a timing assertion


# -- functions sent to the workers: module level, so they pickle by reference ----------------


def add(a: int, b: int) -> int:
    return a + b


def pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def exit_with(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    faulthandler.disable()  # keep pytest's faulthandler from dumping a traceback to the terminal
    ctypes.string_at(0)


def sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def interrupt_self() -> str:
    os.kill(os.getpid(), signal.SIGINT)
    return "still here"


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def return_lock() -> object:
    return threading.Lock()


def call_sys_exit() -> None:
    raise SystemExit(4)


class TwoArgError(Exception):
    """Pickles, but cannot be rebuilt: unpickling calls ``TwoArgError(message)``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")


def fail_unpicklably() -> None:
    raise TwoArgError(7, "odd")


# -- tests -----------------------------------------------------------------------------------


@pytest.fixture
def executor():
    ex = ProcessExecutor(max_workers=2)
    yield ex
    ex.shutdown(wait=False)  # even after a failed test, with a call still running


def test_fits_the_executor_protocols(executor):
    assert isinstance(executor, Executor)
    assert isinstance(executor, Killable)
    assert executor.max_workers == 2


def test_max_workers_must_be_positive():
    with pytest.raises(InvalidOptionError, match="max_workers=0"):
        ProcessExecutor(max_workers=0)


def test_results_come_back_from_another_process(executor):
    assert executor.submit(add, 2, 3).result(TIMEOUT) == 5
    assert executor.submit(pid).result(TIMEOUT) != os.getpid()


def test_exceptions_come_back_with_the_remote_traceback(executor):
    error = executor.submit(fail, "boom").exception(TIMEOUT)
    assert isinstance(error, ValueError)
    assert str(error) == "boom"
    assert "in fail" in str(error.__cause__)


def test_system_exit_is_the_calls_error_not_the_workers_end(executor):
    assert isinstance(executor.submit(call_sys_exit).exception(TIMEOUT), SystemExit)
    assert executor.submit(add, 1, 1).result(TIMEOUT) == 2


def test_many_calls_complete_on_two_workers(executor):
    futures = [executor.submit(add, i, i) for i in range(200)]
    assert [f.result(TIMEOUT) for f in futures] == [2 * i for i in range(200)]


def test_done_callbacks_run(executor):
    seen: list[int] = []
    event = threading.Event()
    future = executor.submit(add, 20, 22)
    future.add_done_callback(lambda f: (seen.append(f.result()), event.set()))
    assert event.wait(TIMEOUT)
    assert seen == [42]


def test_a_done_callback_can_submit_and_kill(executor):
    chained: list[Future] = []
    event = threading.Event()

    def next_step(future):
        long = executor.submit(sleep, 60)
        executor.kill(long)
        chained.append(executor.submit(add, future.result(), 1))
        event.set()

    executor.submit(add, 1, 1).add_done_callback(next_step)
    assert event.wait(TIMEOUT)
    assert chained[0].result(TIMEOUT) == 3


@pytest.mark.parametrize(
    ("crash", "exitcode", "words"),
    [
        (segfault, -signal.SIGSEGV, "signal SIGSEGV (exit code -11)"),
        (exit_with, 3, "exited with code 3"),
        (sigkill_self, -signal.SIGKILL, "signal SIGKILL"),
    ],
)
def test_a_crash_fails_only_its_own_call(executor, crash, exitcode, words):
    before = executor.submit(add, 1, 2)
    args = (3,) if crash is exit_with else ()
    crashed = executor.submit(crash, *args)
    after = [executor.submit(add, i, 1) for i in range(10)]
    error = crashed.exception(TIMEOUT)
    assert isinstance(error, WorkerCrashedError)
    assert error.exitcode == exitcode
    assert words in str(error)
    assert before.result(TIMEOUT) == 3
    assert [f.result(TIMEOUT) for f in after] == [i + 1 for i in range(10)]


def test_every_one_of_many_crashes_is_reported(executor):
    futures = [executor.submit(exit_with, 3) for _ in range(20)]
    errors = [f.exception(TIMEOUT) for f in futures]
    assert all(isinstance(e, WorkerCrashedError) and e.exitcode == 3 for e in errors)
    assert executor.submit(add, 2, 2).result(TIMEOUT) == 4


def test_workers_ignore_sigint(executor):
    assert executor.submit(interrupt_self).result(TIMEOUT) == "still here"


def test_kill_stops_a_running_call_and_frees_its_slot():
    with ProcessExecutor(max_workers=1) as executor:
        sleeping = executor.submit(sleep, 60)
        assert sleeping.running()
        assert executor.kill(sleeping) is True
        error = sleeping.exception(TIMEOUT)
        assert isinstance(error, WorkerCrashedError)
        assert "killed" in str(error)
        assert error.exitcode == -signal.SIGKILL
        assert executor.submit(add, 5, 5).result(TIMEOUT) == 10


def test_kill_cancels_a_queued_call():
    with ProcessExecutor(max_workers=1) as executor:
        sleeping = executor.submit(sleep, 60)
        queued = executor.submit(add, 1, 1)
        assert executor.kill(queued) is True
        assert queued.cancelled()
        assert wait([queued], TIMEOUT).done == {queued}  # notified, not only flagged
        assert executor.kill(sleeping) is True
        assert executor.submit(add, 2, 2).result(TIMEOUT) == 4


def test_kill_is_false_for_finished_or_unknown_calls(executor):
    done = executor.submit(add, 1, 1)
    done.result(TIMEOUT)
    assert executor.kill(done) is False
    assert executor.kill(Future()) is False


def test_a_call_cancelled_while_queued_never_runs():
    with ProcessExecutor(max_workers=1) as executor:
        first = executor.submit(sleep, 0.2)
        queued = executor.submit(exit_with, 9)
        assert queued.cancel()
        assert first.result(TIMEOUT) is None
        assert executor.submit(add, 1, 2).result(TIMEOUT) == 3


def test_an_unpicklable_return_value_is_an_error_not_a_hang(executor):
    error = executor.submit(return_lock).exception(TIMEOUT)
    assert isinstance(error, SerializationError)
    assert "could not be pickled" in str(error)
    assert executor.submit(add, 1, 1).result(TIMEOUT) == 2


def test_an_unpicklable_exception_comes_back_as_runtime_error(executor):
    error = executor.submit(fail_unpicklably).exception(TIMEOUT)
    assert isinstance(error, RuntimeError)
    assert "TwoArgError" in str(error)
    assert "in fail_unpicklably" in str(error)


def test_an_unpicklable_call_is_an_error_future(executor):
    error = executor.submit(add, threading.Lock(), 1).exception(TIMEOUT)
    assert isinstance(error, SerializationError)
    assert executor.submit(lambda: 1).exception(TIMEOUT) is not None


def test_shutdown_without_wait_kills_running_and_cancels_queued():
    executor = ProcessExecutor(max_workers=1)
    sleeping = executor.submit(sleep, 60)
    queued = executor.submit(add, 1, 1)
    executor.shutdown(wait=False)
    assert isinstance(sleeping.exception(TIMEOUT), WorkerCrashedError)
    assert queued.cancelled()
    assert wait([queued], TIMEOUT).done == {queued}


def test_shutdown_with_wait_finishes_queued_work():
    executor = ProcessExecutor(max_workers=2)
    futures = [executor.submit(add, i, 0) for i in range(20)]
    executor.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == list(range(20))


def test_shutdown_is_idempotent_and_refuses_new_calls():
    executor = ProcessExecutor(max_workers=2)
    executor.shutdown()
    executor.shutdown()
    executor.shutdown(wait=False)
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(add, 1, 1)


def test_a_crash_during_shutdown_still_lets_queued_work_finish():
    executor = ProcessExecutor(max_workers=1)
    crashed = executor.submit(exit_with, 5)
    after = executor.submit(add, 1, 1)
    executor.shutdown(wait=True)
    assert isinstance(crashed.exception(0), WorkerCrashedError)
    assert after.result(0) == 2


def test_no_worker_is_left_behind():
    executor = ProcessExecutor(max_workers=2)
    futures = [executor.submit(pid) for _ in range(10)] + [executor.submit(sigkill_self)]
    wait(futures, TIMEOUT)
    pids = {f.result() for f in futures[:-1]}
    executor.shutdown()
    for worker_pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(worker_pid, 0)


RUNNER = """
import os, sys
from cadenza.executors.processes import ProcessExecutor
first, second = ProcessExecutor(2), ProcessExecutor(2)
for ex in (first, second):
    for worker in ex._workers:
        print(worker.process.pid, flush=True)
second.submit(os._exit, 3).exception(30)  # a replacement is forked while both pools exist
for worker in second._workers:
    print(worker.process.pid, flush=True)
os._exit(0)  # die without shutdown(): no atexit hooks run
"""


def test_workers_exit_when_the_runner_dies():
    psutil = pytest.importorskip("psutil")
    output = subprocess.run(
        [sys.executable, "-c", RUNNER], capture_output=True, text=True, timeout=TIMEOUT, check=True
    ).stdout
    pids = {int(line) for line in output.split()}
    assert len(pids) == 5  # four first workers and one replacement
    _, alive = psutil.wait_procs(
        [p for p in map(_process_or_none, pids) if p is not None], timeout=TIMEOUT
    )
    lingering = [p.pid for p in alive if _status(p) not in (None, psutil.STATUS_ZOMBIE)]
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()  # leave no orphans behind when this fails
    assert lingering == []


def _status(process):
    import psutil

    try:
        return process.status()
    except psutil.NoSuchProcess:
        return None


def _process_or_none(pid):
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def test_a_worker_that_dies_before_taking_a_call_is_not_charged_with_it():
    with ProcessExecutor(max_workers=1) as executor:
        worker = executor.submit(pid).result(TIMEOUT)
        os.kill(worker, signal.SIGSTOP)  # it cannot read the next call, let alone start it
        try:
            handed = executor.submit(add, 2, 3)  # sent to the stopped worker before this returns
            assert not handed.done()
        finally:
            os.kill(worker, signal.SIGKILL)
        assert handed.result(TIMEOUT) == 5  # run by its replacement, not failed as a crash
        assert executor.submit(pid).result(TIMEOUT) != worker


def exit_soon(code: int) -> str:
    threading.Timer(0.1, os._exit, (code,)).start()
    raise ValueError("failed, and the worker exits just after")


def test_an_exit_after_a_call_failed_is_charged_to_no_later_call():
    with ProcessExecutor(max_workers=1) as executor:
        failed = executor.submit(exit_soon, 3)
        assert isinstance(failed.exception(TIMEOUT), ValueError)
        time.sleep(0.5)  # it exits while idle
        assert [executor.submit(add, i, 1).result(TIMEOUT) for i in range(5)] == [1, 2, 3, 4, 5]


def test_a_killed_call_that_had_not_started_is_still_killed():
    with ProcessExecutor(max_workers=1) as executor:
        worker = executor.submit(pid).result(TIMEOUT)
        os.kill(worker, signal.SIGSTOP)
        try:
            handed = executor.submit(sleep, 60)
            assert executor.kill(handed) is True
        finally:
            os.kill(worker, signal.SIGCONT)
        assert isinstance(handed.exception(TIMEOUT), WorkerCrashedError)
        assert executor.submit(add, 1, 1).result(TIMEOUT) == 2


WATCHED = """
import os, signal, sys
from cadenza.executors import _parent_death
_parent_death.arm = lambda: False  # as where there is no parent-death signal
from cadenza.executors.processes import ProcessExecutor
ex = ProcessExecutor(1)
future = ex.submit(os.getpid)
print(future.result(30), flush=True)
ex.submit(__import__("time").sleep, 60)
os.kill(os.getpid(), signal.SIGKILL)  # no shutdown, no atexit: the worker is mid-call
"""


def test_without_a_parent_death_signal_a_busy_worker_still_dies_with_the_runner():
    runner = subprocess.run([sys.executable, "-c", WATCHED], capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert runner.returncode == -signal.SIGKILL, runner.stderr
    worker = int(runner.stdout)
    deadline = time.monotonic() + TIMEOUT
    while not _gone(worker):
        if time.monotonic() > deadline:
            os.kill(worker, signal.SIGKILL)
            raise AssertionError(f"worker {worker} outlived its runner")
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
