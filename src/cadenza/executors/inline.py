"""Run each call at once, in the caller's thread: no concurrency, the test default.

A call runs in the main thread when the run does, so a signal handler can stop it: the CLI
arms ``interrupt`` (``deliver_interrupts``), which raises KeyboardInterrupt inside the call in
progress, or, between calls, in the next one before it starts. The run loop takes that as
Ctrl-C: it cancels the run and records it. Outside a call a handler only sets a flag, so an
interrupt never lands inside a commit."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_MAIN = threading.main_thread()


class _Interrupts:
    armed = False
    """A signal handler calls ``interrupt``: track the calls it may stop."""
    inside = False
    """A call is running in the main thread."""
    pending = False
    """A signal came between calls: the next call stops before it starts."""


def deliver_interrupts(armed: bool) -> None:
    """Arm (or disarm, clearing what is pending) ``interrupt`` for the main thread's calls."""
    _Interrupts.armed, _Interrupts.pending = armed, False


def interrupt() -> None:
    """From a signal handler: stop the main thread's inline call now (KeyboardInterrupt), or
    the next one before it starts. Does nothing unless armed."""
    if not _Interrupts.armed:
        return
    if _Interrupts.inside:
        raise KeyboardInterrupt
    _Interrupts.pending = True


class InlineExecutor:
    max_workers = 1
    synchronous = True
    """Work is done by the time ``submit`` returns: the run loop need not hold calls back."""

    def call(self, fn: Callable[..., T], /, *args: Any) -> T:
        """``fn(*args)``, now: the run loop's fast path, with no Future to make and read."""
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
        future: Future[T] = Future()
        try:
            future.set_result(self.call(fn, *args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass
