"""The contract every Executor keeps, as a pytest suite.

Subclass ``ExecutorContract`` in a ``Test*`` class and override ``make_executor``; pytest then
runs every contract test against that executor::

    class TestMyExecutor(ExecutorContract):
        def make_executor(self) -> Executor:
            return MyExecutor(max_workers=2)

The tests read what the executor says of itself (``base.py``): ``synchronous``,
``in_process``, ``call`` and ``Killable`` each turn on the tests of what they promise, and the
crash tests (a call that ends its own process) run only where calls run in other processes.
``running_at_once`` is how many calls the executor runs at the same time; it defaults to
``max_workers`` (one for a synchronous executor), and an executor that accepts more calls in
flight than it has slots (Dask's) says how many slots it has.

Calls run in real threads and processes. They meet through files in a folder of the test's
own, never through shared memory, so the same calls work in a thread, a forked worker or a
worker on another process tree; no test asserts a duration: ``GUARD`` bounds every wait, so a
broken executor fails the test instead of hanging it. Needs pytest (``cadenza[testing]``).
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import functools
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

try:
    import pytest
except ImportError as error:  # pragma: no cover - pytest is there wherever the suites run
    raise ImportError(
        "cadenza.testing.executors is a pytest suite and pytest is not installed. Install it "
        "with: pip install 'cadenza[testing]'"
    ) from error

from cadenza.exceptions import SerializationError, WorkerCrashedError
from cadenza.executors.base import Executor, Killable

GUARD = 60.0
"""Seconds any wait may take before the test fails: a guard against hangs, not a timing goal."""

_TICK = 0.005
_RELEASE = "release"


# -- calls sent to the executors: module level, so they pickle by reference ------------------


def add(a: int, b: int) -> int:
    return a + b


def where() -> tuple[int, int]:
    """The process and thread the call ran in."""
    return os.getpid(), threading.get_ident()


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def raise_system_exit(code: int) -> None:
    raise SystemExit(code)


class TwoArgError(Exception):
    """Pickles, but cannot be rebuilt: unpickling calls ``TwoArgError(message)``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")


def raise_two_arg_error() -> None:
    raise TwoArgError(7, "odd")


def return_lock() -> object:
    return threading.Lock()


def hold(folder: str, name: str) -> str:
    """Say it started (``started-<name>`` holds its pid), then wait for ``release``."""
    _mark(folder, name)
    _await(lambda: os.path.exists(os.path.join(folder, _RELEASE)), f"{folder}/{_RELEASE}")
    return name


def meet(folder: str, name: str, count: int) -> str:
    """Say it started, then wait until ``count`` calls have: they all ran at the same time."""
    _mark(folder, name)
    _await(lambda: len(started(folder)) >= count, f"{count} calls started in {folder}")
    return name


def exit_process(code: int) -> None:
    os._exit(code)


def kill_own_process() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def segfault() -> None:
    faulthandler.disable()  # keep a faulthandler that pytest armed from dumping its traceback
    ctypes.string_at(0)


def _mark(folder: str, name: str) -> None:
    path = os.path.join(folder, f"started-{name}")
    with open(path + ".tmp", "w") as file:
        file.write(str(os.getpid()))
    os.replace(path + ".tmp", path)  # whole, or not there yet


def _await(done: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + GUARD
    while not done():
        if time.monotonic() > end:
            raise TimeoutError(f"Waited {GUARD:g}s for {what}: a guard against hangs.")
        time.sleep(_TICK)


def started(folder: str | Path) -> dict[str, int]:
    """The calls that started in ``folder``: name -> pid."""
    found = {}
    for path in Path(folder).glob("started-*"):
        if not path.name.endswith(".tmp"):
            found[path.name.removeprefix("started-")] = int(path.read_text())
    return found


def _gone(pid: int) -> bool:
    """The process has exited (a zombie counts: it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # not Linux: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _in_thread(action: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``action`` in a thread of its own; the list gets what it returned, or raised."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(action())
        except BaseException as exc:  # pragma: no cover - shown by the test that reads it
            out.append(exc)

    thread = threading.Thread(target=run, name="cadenza-contract", daemon=True)
    thread.start()
    return thread, out


class ExecutorContract:
    """What every executor must do. Subclasses override ``make_executor``."""

    running_at_once: int | None = None
    """Calls the executor runs at the same time; None: ``max_workers`` (one if synchronous)."""

    def make_executor(self) -> Executor:
        raise NotImplementedError

    # -- fixtures and helpers ----------------------------------------------------------------

    @pytest.fixture
    def folder(self, tmp_path: Path) -> Iterator[Path]:
        """Where calls say they started and wait to be released; released at teardown."""
        path = tmp_path / "calls"
        path.mkdir()
        yield path
        self.release(path)

    @pytest.fixture
    def executor(self, folder: Path) -> Iterator[Executor]:
        executor = self.make_executor()
        yield executor
        self.release(folder)  # before the executor, so nothing it runs is left waiting
        thread, _ = _in_thread(lambda: executor.shutdown(wait=True))
        thread.join(GUARD)
        assert not thread.is_alive(), "shutdown(wait=True) hung once every call was released"

    def release(self, folder: Path) -> None:
        (folder / _RELEASE).touch()

    def slots(self, executor: Executor) -> int:
        if self.running_at_once is not None:
            return self.running_at_once
        return 1 if _synchronous(executor) else executor.max_workers

    def wait_started(self, folder: Path, count: int) -> dict[str, int]:
        _await(lambda: len(started(folder)) >= count, f"{count} calls started in {folder}")
        return started(folder)

    # -- the protocol ------------------------------------------------------------------------

    def test_it_is_an_executor(self, executor: Executor) -> None:
        assert isinstance(executor, Executor)
        assert isinstance(executor.max_workers, int) and executor.max_workers >= 1
        assert 1 <= self.slots(executor) <= executor.max_workers

    def test_results_come_back(self, executor: Executor) -> None:
        assert executor.submit(add, 2, 3).result(GUARD) == 5
        data = os.urandom(1 << 20)  # a large value travels whole
        assert executor.submit(bytes, data).result(GUARD) == data

    def test_many_calls_come_back_in_their_own_futures(self, executor: Executor) -> None:
        futures = [executor.submit(add, i, i) for i in range(200)]
        assert [f.result(GUARD) for f in futures] == [2 * i for i in range(200)]

    def test_in_process_says_where_calls_run(self, executor: Executor) -> None:
        pid, _ = executor.submit(where).result(GUARD)
        if getattr(executor, "in_process", True):
            assert pid == os.getpid(), "in_process is True (the default) but calls run elsewhere"
        else:
            assert pid != os.getpid(), "in_process is False but calls run in this process"

    def test_synchronous_calls_are_done_when_submit_returns(self, executor: Executor) -> None:
        if not _synchronous(executor):
            pytest.skip("not synchronous")
        assert executor.submit(add, 1, 1).done()
        failed = executor.submit(raise_value_error, "now")
        assert failed.done() and isinstance(failed.exception(0), ValueError)

    def test_call_runs_in_the_callers_thread_and_returns_or_raises(
        self, executor: Executor
    ) -> None:
        call = getattr(executor, "call", None)
        if call is None:
            pytest.skip("no call method")
        assert call(where) == (os.getpid(), threading.get_ident())
        with pytest.raises(ValueError, match=r"^direct$"):
            call(raise_value_error, "direct")

    # -- errors ------------------------------------------------------------------------------

    def test_an_exception_comes_back_with_its_type_message_and_traceback(
        self, executor: Executor
    ) -> None:
        error = executor.submit(raise_value_error, "boom").exception(GUARD)
        assert type(error) is ValueError
        assert str(error) == "boom"
        # the frame that raised: in the traceback itself, or (from another process) as text
        # in the cause, which is what a log of the error prints
        assert "in raise_value_error" in "".join(traceback.format_exception(error))

    def test_system_exit_is_the_calls_error_not_the_executors_end(
        self, executor: Executor
    ) -> None:
        error = executor.submit(raise_system_exit, 4).exception(GUARD)
        assert isinstance(error, SystemExit) and error.code == 4
        assert executor.submit(add, 1, 1).result(GUARD) == 2

    def test_an_exception_that_cannot_be_rebuilt_still_says_what_it_was(
        self, executor: Executor
    ) -> None:
        error = executor.submit(raise_two_arg_error).exception(GUARD)
        assert error is not None
        assert "7: odd" in str(error)
        assert executor.submit(add, 1, 1).result(GUARD) == 2

    def test_an_unpicklable_argument_or_result_is_a_serialization_error(
        self, executor: Executor
    ) -> None:
        if getattr(executor, "in_process", True):
            pytest.skip("values stay in this process")
        error = executor.submit(add, threading.Lock(), 1).exception(GUARD)
        assert isinstance(error, SerializationError), repr(error)
        error = executor.submit(return_lock).exception(GUARD)
        assert isinstance(error, SerializationError), repr(error)
        assert executor.submit(add, 1, 1).result(GUARD) == 2

    # -- a call that ends its own process ----------------------------------------------------

    @pytest.mark.parametrize(
        ("crash", "args", "exitcode"),
        [
            (exit_process, (3,), 3),
            (kill_own_process, (), -signal.SIGKILL),
            (segfault, (), -signal.SIGSEGV),
        ],
        ids=["os._exit", "sigkill", "segfault"],
    )
    def test_a_call_that_ends_its_process_is_a_worker_crash(
        self, executor: Executor, crash: Callable[..., None], args: tuple[Any, ...],
        exitcode: int,
    ) -> None:
        if getattr(executor, "in_process", True):
            pytest.skip("calls run in this process: ending it would end the tests")
        before = executor.submit(add, 1, 2)
        crashed = executor.submit(crash, *args)
        after = [executor.submit(add, i, 1) for i in range(10)]
        error = crashed.exception(GUARD)
        # the run loop records a WorkerCrashedError as a crashed attempt (engine/outcomes.py)
        assert isinstance(error, WorkerCrashedError), repr(error)
        assert error.exitcode == exitcode
        assert str(exitcode) in str(error)
        assert before.result(GUARD) == 3
        assert [f.result(GUARD) for f in after] == [i + 1 for i in range(10)]

    def test_every_one_of_many_crashes_is_reported_and_frees_its_slot(
        self, executor: Executor, folder: Path
    ) -> None:
        if getattr(executor, "in_process", True):
            pytest.skip("calls run in this process: ending it would end the tests")
        crashes = [executor.submit(exit_process, 3) for _ in range(3 * executor.max_workers)]
        errors = [f.exception(GUARD) for f in crashes]
        assert all(isinstance(e, WorkerCrashedError) and e.exitcode == 3 for e in errors)
        count = self.slots(executor)
        futures = [executor.submit(meet, str(folder), str(i), count) for i in range(count)]
        assert len([f.result(GUARD) for f in futures]) == count

    def test_a_crash_while_shutting_down_lets_the_rest_finish(self, executor: Executor) -> None:
        if getattr(executor, "in_process", True):
            pytest.skip("calls run in this process: ending it would end the tests")
        crashed = executor.submit(exit_process, 5)
        after = [executor.submit(add, i, 1) for i in range(3 * executor.max_workers)]
        executor.shutdown(wait=True)
        assert isinstance(crashed.exception(0), WorkerCrashedError)
        assert [f.result(0) for f in after] == [i + 1 for i in range(len(after))]

    def test_no_process_that_ran_a_call_outlives_shutdown(self, executor: Executor) -> None:
        if getattr(executor, "in_process", True):
            pytest.skip("calls run in this process")
        pids = {executor.submit(where).result(GUARD)[0] for _ in range(4 * executor.max_workers)}
        executor.shutdown(wait=True)
        for pid in pids:
            _await(functools.partial(_gone, pid), f"the process {pid} to end after shutdown")

    # -- concurrency -------------------------------------------------------------------------

    def test_as_many_calls_as_it_has_slots_run_at_once(
        self, executor: Executor, folder: Path
    ) -> None:
        count = self.slots(executor)
        futures = [executor.submit(meet, str(folder), str(i), count) for i in range(count)]
        # each returns only once all have started: none waited for another to end
        assert sorted(f.result(GUARD) for f in futures) == sorted(map(str, range(count)))

    def test_no_more_calls_run_at_once_than_it_has_slots(
        self, executor: Executor, folder: Path
    ) -> None:
        if _synchronous(executor):
            pytest.skip("synchronous: a held call would hold this test")
        count = self.slots(executor)
        futures = [executor.submit(hold, str(folder), str(i)) for i in range(count + 2)]
        self.wait_started(folder, count)
        assert len(started(folder)) == count
        assert not any(f.done() for f in futures)
        self.release(folder)
        assert sorted(f.result(GUARD) for f in futures) == sorted(map(str, range(count + 2)))

    def test_done_callbacks_run_and_may_submit(self, executor: Executor) -> None:
        chained: list[Future[Any]] = []
        seen = threading.Event()

        def next_step(future: Future[int]) -> None:
            chained.append(executor.submit(add, future.result(), 1))
            seen.set()

        executor.submit(add, 20, 21).add_done_callback(next_step)
        assert seen.wait(GUARD)
        assert chained[0].result(GUARD) == 42

    # -- kill (Killable executors) -----------------------------------------------------------

    def test_a_done_callback_may_kill(self, executor: Executor, folder: Path) -> None:
        killable = _killable(executor)
        outcome: list[tuple[Future[str], bool]] = []

        def next_step(_: Future[int]) -> None:
            held = executor.submit(hold, str(folder), "held")
            outcome.append((held, killable.kill(held)))

        executor.submit(add, 1, 1).add_done_callback(next_step)
        _await(lambda: bool(outcome), "a done-callback to kill the call it submitted")
        held, killed = outcome[0]
        assert killed is True
        assert held.exception(GUARD) is not None
        assert executor.submit(add, 2, 3).result(GUARD) == 5

    def test_kill_stops_a_running_call_and_frees_its_slot(
        self, executor: Executor, folder: Path
    ) -> None:
        killable = _killable(executor)
        held = executor.submit(hold, str(folder), "held")
        pid = self.wait_started(folder, 1)["held"]
        assert killable.kill(held) is True
        error = held.exception(GUARD)  # a killed call ends at once, with an error
        assert error is not None
        if not getattr(executor, "in_process", True):
            _await(lambda: _gone(pid), f"the process {pid} that ran the killed call to end")
        # every slot is free again: that many calls can meet
        count = self.slots(executor)
        meeting = folder / "meeting"
        meeting.mkdir()
        futures = [executor.submit(meet, str(meeting), str(i), count) for i in range(count)]
        assert len([f.result(GUARD) for f in futures]) == count

    def test_kill_drops_a_call_that_waits_for_a_slot(
        self, executor: Executor, folder: Path
    ) -> None:
        killable = _killable(executor)
        count = self.slots(executor)
        holding = [executor.submit(hold, str(folder), str(i)) for i in range(count)]
        self.wait_started(folder, count)
        waiting = executor.submit(hold, str(folder), "waiting")
        assert killable.kill(waiting) is True
        assert waiting.cancelled() or waiting.exception(GUARD) is not None
        self.release(folder)
        assert len([f.result(GUARD) for f in holding]) == count
        executor.shutdown(wait=True)
        assert "waiting" not in started(folder), "a killed call that waited still ran"

    def test_kill_is_false_for_a_finished_or_unknown_call(self, executor: Executor) -> None:
        killable = _killable(executor)
        done = executor.submit(add, 1, 1)
        done.result(GUARD)
        assert killable.kill(done) is False
        assert killable.kill(Future()) is False

    # -- shutdown ----------------------------------------------------------------------------

    def test_shutdown_with_wait_finishes_what_was_submitted(self, executor: Executor) -> None:
        futures = [executor.submit(add, i, 0) for i in range(50)]
        executor.shutdown(wait=True)
        assert all(f.done() for f in futures)
        assert [f.result(0) for f in futures] == list(range(50))

    def test_shutdown_with_wait_waits_for_a_running_call(
        self, executor: Executor, folder: Path
    ) -> None:
        if _synchronous(executor):
            pytest.skip("synchronous: nothing runs once submit has returned")
        held = executor.submit(hold, str(folder), "held")
        self.wait_started(folder, 1)
        def shut_down() -> bool:
            executor.shutdown(wait=True)
            return held.done()

        thread, out = _in_thread(shut_down)
        self.release(folder)
        thread.join(GUARD)
        assert not thread.is_alive(), "shutdown(wait=True) did not return"
        assert out == [True], "shutdown(wait=True) returned before its running call ended"
        assert held.result(0) == "held"

    def test_shutdown_without_wait_returns_while_a_call_runs(
        self, executor: Executor, folder: Path
    ) -> None:
        if _synchronous(executor):
            pytest.skip("synchronous: nothing runs once submit has returned")
        held = executor.submit(hold, str(folder), "held")
        self.wait_started(folder, 1)
        thread, _ = _in_thread(lambda: executor.shutdown(wait=False))
        thread.join(GUARD)
        assert not thread.is_alive(), "shutdown(wait=False) waited for a held call"
        self.release(folder)
        with contextlib.suppress(BaseException):  # its result, or the error of being stopped
            held.result(GUARD)
        assert held.done()

    def test_shutdown_without_wait_drops_calls_that_wait_for_a_slot(
        self, executor: Executor, folder: Path
    ) -> None:
        if _synchronous(executor):
            pytest.skip("synchronous: nothing waits once submit has returned")
        count = self.slots(executor)
        holding = [executor.submit(hold, str(folder), str(i)) for i in range(count)]
        self.wait_started(folder, count)
        waiting = [executor.submit(hold, str(folder), f"waiting-{i}") for i in range(2)]
        executor.shutdown(wait=False)
        self.release(folder)
        for future in [*holding, *waiting]:
            with contextlib.suppress(BaseException):
                future.result(GUARD)
        assert all(f.cancelled() or f.exception(0) is not None for f in waiting)
        assert not any(name.startswith("waiting") for name in started(folder))

    def test_submit_after_shutdown_is_refused(self, executor: Executor) -> None:
        executor.shutdown(wait=True)
        executor.shutdown(wait=True)  # twice is harmless
        with pytest.raises(RuntimeError, match=r"shut ?down"):
            executor.submit(add, 1, 1)
        call = getattr(executor, "call", None)
        if call is not None:
            with pytest.raises(RuntimeError, match=r"shut ?down"):
                call(add, 1, 1)


def _synchronous(executor: Executor) -> bool:
    return bool(getattr(executor, "synchronous", False))


def _killable(executor: Executor) -> Killable:
    if not isinstance(executor, Killable):
        pytest.skip("cannot kill a running call")
    return executor


__all__ = ["GUARD", "ExecutorContract", "started"]
