"""The Executor protocol: where task attempts run. Shaped like ``concurrent.futures``.

Optional attributes tell the run loop more: ``synchronous = True`` (a call is done when
``submit`` returns), ``in_process = False`` (calls run in other processes, so values travel
as bytes and the loop keeps none in memory), and a ``call(fn, *args)`` method (run it in the
caller's thread and return or raise: the loop then skips ``submit`` and its Future).

Out of process, a call that ends its own process (``os._exit``, a signal, a segfault) fails
with ``WorkerCrashedError`` carrying the exit code, which the loop records as a crashed
attempt; a call's exception comes back as itself with its traceback as text in
``__cause__``. ``cadenza.testing.executors.ExecutorContract`` checks all of this."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class Executor(Protocol):
    max_workers: int

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Start ``fn(*args)`` when a worker is free; the future holds its result or error."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work (``submit`` then raises RuntimeError); with ``wait``, return once
        what was submitted has finished. Without it, calls still waiting for a slot never
        start, and a running call is stopped where the executor can stop one (a thread runs
        on to its end)."""
        ...


@runtime_checkable
class Killable(Protocol):
    """An executor that can stop a running call (timeouts, cancel): the processes executor."""

    def kill(self, future: Future[Any]) -> bool:
        """Stop the call behind ``future`` now; its slot is freed and its future ends with an
        error. A call still waiting for a slot is dropped instead (its future cancelled, where
        it can be) and never starts: True too. False if it had finished or is not this
        executor's.

        An executor that queues calls beyond its slots (Dask) also has ``kill_all(futures)``,
        returning those it stopped: stopping them one at a time would free a slot that a call
        waiting in its queue takes (and starts) before its own kill arrives."""
        ...
