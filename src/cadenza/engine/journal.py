"""The run loop's writes since its last commit, gathered so that each commit is one transaction.

A task instance or attempt that changes several times between two commits is written once, as
it stands at the commit: the journal keeps the live objects, not a record per change, and
builds the records when it commits. A queued instance is written in the state it was last
recorded in (queued is never stored: only the loop needs it).

An instance that is only ``pending`` (created, not started) is a write nothing depends on, and
a resume needs no row for it. Its row waits up to WAITING_COMMIT, or until the run's last
commit; most are never written, because by then the task has run and its row says how it
ended. A run killed before may leave some tasks without a row: a resume runs them.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cadenza.engine.states import TaskState
from cadenza.secrets import mask_data
from cadenza.store.base import (
    AttemptRecord,
    Batch,
    Event,
    Fence,
    MetadataStore,
    RunRecord,
    TaskInstanceRecord,
)

if TYPE_CHECKING:
    from cadenza.engine.attempt import AttemptResult
    from cadenza.engine.hooks import Hooks

Key = tuple[str, int]
GROUP_COMMIT = 0.02
"""Seconds a write may wait to be committed with others (never past the start of anything
that depends on it)."""
COMMIT_SHARE = 0.25
"""At most about this share of a run's time goes to commits that nothing waits for: after a
commit that took ``c`` seconds, the next may wait ``c / COMMIT_SHARE``. A large store makes
each commit dearer (index pages to rewrite), so a long fan-out commits in larger groups, up
to WAITING_COMMIT apart."""
WAITING_COMMIT = 1.0
"""Seconds a pending row may wait to be committed: it shows a task that has not started yet."""
VALUE: dict[TaskState, str] = {state: state.value for state in TaskState}
"""Each state's text, looked up without the enum's ``.value`` property (the loop's hot path)."""
_PENDING = TaskState.PENDING  # a module constant: TaskState.X is a slow class lookup
_MAIN = threading.main_thread()


@dataclass(slots=True)
class Instance:
    """A task instance as the run loop holds it (``index`` is ``-1`` for an unmapped task and
    for the parent of a mapped one)."""

    task: str
    index: int
    state: TaskState = TaskState.PENDING
    attempt: int = 0
    output: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    cache_key: str | None = None
    meta: dict[str, Any] | None = None
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    token: int = 0
    future: Future[AttemptResult] | None = None
    item: Any = None
    log_path: str | None = None
    generation: int = 0
    """The commit count when it was queued: it may start once a later commit is done."""
    shown: TaskState = TaskState.PENDING
    """The state it was last recorded in: what the next commit writes."""
    running: AttemptRecord | None = None
    """The record of its current attempt, updated in place when the attempt ends."""

    def record(self, run_id: str, state: TaskState | None = None) -> TaskInstanceRecord:
        return TaskInstanceRecord(
            run_id, self.task, self.index, VALUE[state or self.state], self.attempt,
            self.cache_key, self.output, self.files, self.started, self.ended, self.error,
        )


class Journal:
    """What the run has changed since its last commit; ``commit`` writes it in one ``apply``."""

    def __init__(self, store: MetadataStore, run_id: str, hooks: list[Hooks],
                 fence: Fence | None = None) -> None:
        self.store, self.run_id, self.hooks = store, run_id, hooks
        self.fence = fence
        """``(run_id, epoch)`` of the runner's claim: each commit is applied only while the
        claim holds (else ClaimLostError, and nothing is written)."""
        self.batch = Batch()
        self.instances: dict[Key, Instance] = {}
        self.waiting: dict[Key, Instance] = {}
        """Instances recorded only as pending: written once WAITING_COMMIT old, or by the run's
        last commit, unless they move on first."""
        self.waiting_since = 0.0
        self.attempts: dict[tuple[str, int, int], AttemptRecord] = {}
        self.made: dict[tuple[str, int, int], AttemptRecord] = {}
        """Every attempt record of this runner, as last written: the run's result lists them."""
        self.generation = 0
        """How many commits there have been."""
        self.last_commit = time.monotonic()
        self.gap = GROUP_COMMIT
        """How long writes may wait for the next commit: GROUP_COMMIT, or longer after a slow
        commit (COMMIT_SHARE)."""

    def due(self) -> float | None:
        """When (``time.monotonic``) the next commit is due; None if nothing waits for one."""
        if self.instances or self.attempts or self.batch:
            return self.last_commit + self.gap
        if self.waiting:
            return self.waiting_since + WAITING_COMMIT
        return None

    def instance(self, ti: Instance) -> None:
        """Record ``ti`` as it is now (and as it will be at the commit, if it changes again)."""
        ti.shown = state = ti.state
        key = (ti.task, ti.index)
        if state is _PENDING:
            if not self.waiting:
                self.waiting_since = time.monotonic()
            self.waiting[key] = ti
            self.instances.pop(key, None)
            return
        self.instances[key] = ti
        if self.waiting:
            self.waiting.pop(key, None)

    def attempt(self, ti: Instance, state: str, log_path: str | None) -> AttemptRecord:
        """A new record of ``ti``'s current attempt."""
        record = AttemptRecord(
            self.run_id, ti.task, ti.index, ti.attempt, state, ti.started or time.time(),
            log_path=log_path,
        )
        key = (ti.task, ti.index, ti.attempt)
        self.attempts[key] = self.made[key] = record
        return record

    def update(self, record: AttemptRecord) -> None:
        """Write ``record`` again at the next commit: it changed since it was made."""
        self.attempts[(record.task, record.map_index, record.attempt)] = record

    def event(self, task: str | None, index: int, kind: str, data: dict[str, Any]) -> Event:
        event = Event(self.run_id, kind, time.time(), task, index, mask_data(data) if data
                      else data)
        self.batch.events.append(event)
        for hook in self.hooks:
            hook.after_event(event)
        return event

    def run(self, run: RunRecord) -> None:
        self.batch.runs.append(run)

    def commit(self, final: bool = False) -> None:
        """Write what changed in one ``apply``; pending rows only when due, or ``final``.
        What changed is forgotten only once written, and SIGINT / SIGTERM wait for that: an
        interrupted write is made again by the next commit, never lost."""
        batch, run_id = self.batch, self.run_id
        batch.task_instances = [ti.record(run_id, ti.shown) for ti in self.instances.values()]
        now = time.monotonic()
        flush = bool(self.waiting) and (final or now - self.waiting_since >= WAITING_COMMIT)
        if flush:
            batch.task_instances += [ti.record(run_id, ti.shown) for ti in self.waiting.values()]
        batch.attempts = list(self.attempts.values())
        with _signals_wait():
            if batch:  # else only young pending rows: nothing to write, yet a task may start
                if self.fence is None:
                    self.store.apply(batch)
                else:
                    self.store.apply(batch, self.fence)
            self.batch, self.instances, self.attempts = Batch(), {}, {}
            if flush:
                self.waiting = {}
        self.generation += 1
        self.last_commit = time.monotonic()
        took = self.last_commit - now
        self.gap = min(WAITING_COMMIT, max(GROUP_COMMIT, took / COMMIT_SHARE))


_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _signals_wait() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then reach their handlers: a store
    write is never cut in half by a KeyboardInterrupt. Python runs handlers in the main thread
    only, so only there is this needed."""
    if threading.current_thread() is not _MAIN:
        yield
        return
    came: list[int] = []
    previous: dict[signal.Signals, Any] = {}
    for sig in _HELD:
        if signal.getsignal(sig) is not None:  # None: set outside Python; left alone
            previous[sig] = signal.signal(sig, lambda signum, _: came.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in came:
            handler = previous[signal.Signals(signum)]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
