"""Run each call at once, in the caller's thread: no concurrency, the test default."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class InlineExecutor:
    max_workers = 1
    synchronous = True
    """Work is done by the time ``submit`` returns: the run loop need not hold calls back."""

    def call(self, fn: Callable[..., T], /, *args: Any) -> T:
        """``fn(*args)``, now: the run loop's fast path, with no Future to make and read."""
        return fn(*args)

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(self.call(fn, *args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass
