"""Run each call at once, in the caller's thread: no concurrency, the test default.

A call runs in the main thread when the run does, so a signal handler can stop it: while
``signals_cancel`` is in force, SIGINT (and SIGTERM, for the CLI) set the run's cancel flag,
which the run loop handles between its steps, and ``interrupt`` raises KeyboardInterrupt
inside the task body in progress, or, when none is, in the next one before it starts. The
loop takes that as Ctrl-C: it cancels the run and records it. Outside a body a signal only
sets the flag, so it never lands inside a commit, nor between a body's return and the record
of its result: a body that returned is recorded as it ended, and only then is the run
cancelled (a resume never runs it again)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

_MAIN = threading.main_thread()


class _Interrupts:
    armed = False
    """A signal handler calls ``interrupt``: track the calls it may stop."""
    inside = False
    """A call is running in the main thread."""
    pending = False
    """A signal came outside a body: the next body stops before it starts."""


def deliver_interrupts(armed: bool) -> None:
    """Arm (or disarm, clearing what is pending) ``interrupt`` for the main thread's calls."""
    _Interrupts.armed, _Interrupts.pending = armed, False


def body(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Call a task's body (its function, or its shell command): the only place an inline
    interrupt lands. A signal that came before it (``pending``) stops it before it starts."""
    if _Interrupts.pending and _Interrupts.inside and threading.current_thread() is _MAIN:
        raise KeyboardInterrupt
    return fn(*args, **kwargs)


_BODY = body.__code__


def _in_body(frame: FrameType | None) -> bool:
    """Whether ``frame``, where a signal handler interrupted the main thread, runs inside a
    body. In ``body``'s own frame the body has not started, or has returned: its result must
    reach the journal, so the signal waits (``pending``)."""
    if frame is None or frame.f_code is _BODY:
        return False
    frame = frame.f_back
    while frame is not None:
        if frame.f_code is _BODY:
            return True
        frame = frame.f_back
    return False


def interrupt(frame: FrameType | None) -> None:
    """From a signal handler (``frame``: where it interrupted): stop the main thread's inline
    body now (KeyboardInterrupt), or the next one before it starts. Does nothing unless
    armed."""
    if not _Interrupts.armed:
        return
    if _Interrupts.inside and _in_body(frame):
        raise KeyboardInterrupt
    _Interrupts.pending = True


@contextmanager
def signals_cancel(cancel: threading.Event, signals: tuple[signal.Signals, ...], *,
                   only_default: bool = False, restore: bool = True) -> Iterator[list[int]]:
    """While the block runs, ``signals`` set ``cancel`` and stop the main thread's inline call,
    instead of what they did; yields the list of the signals that came. ``only_default``: take
    over SIGINT only where it still raises KeyboardInterrupt (no one else handles it).
    ``restore=False`` leaves the handlers in place, for a process about to exit. Only the main
    thread can set handlers: elsewhere this does nothing."""
    came: list[int] = []
    if threading.current_thread() is not _MAIN:
        yield came
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        came.append(signum)
        cancel.set()
        interrupt(frame)

    previous = {}
    for sig in signals:
        handler = signal.getsignal(sig)
        if handler is None or (only_default and handler is not signal.default_int_handler):
            continue  # set outside Python, or by someone who handles it their own way
        previous[sig] = signal.signal(sig, stop)
    if not previous:  # someone else handles them (the CLI, around this run): leave it all be
        yield came
        return
    deliver_interrupts(True)
    try:
        yield came
    finally:
        deliver_interrupts(False)
        if restore:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class InlineExecutor:
    max_workers = 1
    synchronous = True
    """Work is done by the time ``submit`` returns: the run loop need not hold calls back."""
    _closed = False

    def call(self, fn: Callable[..., T], /, *args: Any) -> T:
        """``fn(*args)``, now: the run loop's fast path, with no Future to make and read."""
        if self._closed:
            raise _shut_down()
        if not _Interrupts.armed or threading.current_thread() is not _MAIN:
            return fn(*args)
        if _Interrupts.pending:
            raise KeyboardInterrupt
        _Interrupts.inside = True
        try:
            return fn(*args)
        finally:
            _Interrupts.inside = False

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        if self._closed:  # refused, as concurrent.futures does, not an error in the Future
            raise _shut_down()
        future: Future[T] = Future()
        try:
            future.set_result(self.call(fn, *args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True


def _shut_down() -> RuntimeError:
    return RuntimeError("This InlineExecutor has been shut down; create a new one to submit calls.")
