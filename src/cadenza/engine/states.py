"""The two state machines, each as a table: task instances (``TaskState``, ``TRANSITIONS``,
``transition``) and runs (``RunState``, ``RUN_TRANSITIONS``, ``move_run``).

The run loop (``engine/run.py``) is the only code that calls ``transition``; writing to the
store, events and progress displays happen afterwards, in hooks, never inside it. A run's
state is moved by the runner that owns the run (engine/claim.py), or by a person's action
(actions.py) made under a claim of its own.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from cadenza.exceptions import InvalidTransitionError

if TYPE_CHECKING:
    from cadenza.store.base import RunRecord


class TaskState(StrEnum):
    PENDING = "pending"  # created with its run; waiting for its upstream tasks
    QUEUED = "queued"  # ready, waiting for a worker slot
    RUNNING = "running"  # an attempt is executing
    SUCCESS = "success"  # the last attempt returned and its outputs are stored
    FAILED = "failed"  # the last attempt raised and no retry is left
    UP_FOR_RETRY = "up_for_retry"  # an attempt failed; the next waits out its backoff
    SKIPPED = "skipped"  # a branch did not choose it, or its trigger rule ruled it out
    UPSTREAM_FAILED = "upstream_failed"  # an upstream failure means it can never run
    CACHED = "cached"  # an earlier success with the same cache key stands in for it
    AWAITING_APPROVAL = "awaiting_approval"  # a gate waiting for a person
    CANCELLED = "cancelled"  # its run was cancelled before it could finish


S = TaskState

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.PENDING: frozenset(
        {S.QUEUED, S.SKIPPED, S.UPSTREAM_FAILED, S.CACHED, S.CANCELLED, S.AWAITING_APPROVAL}
    ),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.PENDING}),
    # RUNNING/QUEUED/UP_FOR_RETRY -> PENDING: the runner died, and a resume starts them over.
    # RUNNING -> CACHED: a mapped task, running while its items settle, found all cached.
    S.RUNNING: frozenset(
        {S.SUCCESS, S.FAILED, S.UP_FOR_RETRY, S.CANCELLED, S.SKIPPED, S.PENDING, S.CACHED}
    ),
    S.UP_FOR_RETRY: frozenset({S.QUEUED, S.CANCELLED, S.PENDING}),
    S.AWAITING_APPROVAL: frozenset({S.SUCCESS, S.FAILED, S.CANCELLED, S.PENDING}),
    # Terminal states leave only when a resume or retry resets what did not succeed.
    S.FAILED: frozenset({S.PENDING}),
    S.UPSTREAM_FAILED: frozenset({S.PENDING}),
    S.CANCELLED: frozenset({S.PENDING}),
    S.SKIPPED: frozenset(),
    S.SUCCESS: frozenset(),
    S.CACHED: frozenset(),
}

TERMINAL: frozenset[TaskState] = frozenset(
    {S.SUCCESS, S.FAILED, S.SKIPPED, S.UPSTREAM_FAILED, S.CACHED, S.CANCELLED}
)
"""States a run can end with; a task in one of them is done for this run."""

SUCCEEDED: frozenset[TaskState] = frozenset({S.SUCCESS, S.CACHED})
"""States whose output downstream tasks may use."""

RESUMABLE: frozenset[TaskState] = frozenset(
    {S.FAILED, S.UPSTREAM_FAILED, S.CANCELLED, S.RUNNING, S.QUEUED, S.UP_FOR_RETRY,
     S.AWAITING_APPROVAL}
)
"""States a resume sends back to pending: what did not finish, or finished badly."""


def transition(task: str, run_id: str, old: TaskState, new: TaskState) -> TaskState:
    """Return ``new`` if the move from ``old`` is legal, else raise ``InvalidTransitionError``."""
    if new not in TRANSITIONS[old]:
        raise InvalidTransitionError(task=task, run_id=run_id, old=old.value, new=new.value)
    return new


class RunState(StrEnum):
    QUEUED = "queued"  # waiting for a runner: made by the scheduler, a trigger, or a retry
    RUNNING = "running"  # a runner owns it and is working on it
    WAITING = "waiting"  # only gates awaiting approval are left; a resume goes on after them
    SUCCESS = "success"  # every task ended success, cached or skipped
    FAILED = "failed"  # some task failed or could not run
    CANCELLED = "cancelled"  # a person or signal stopped it
    INTERRUPTED = "interrupted"  # its runner died or lost its claim; `cadenza run --resume`


R = RunState

RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    R.QUEUED: frozenset({R.RUNNING, R.CANCELLED}),
    R.RUNNING: frozenset({R.SUCCESS, R.FAILED, R.CANCELLED, R.WAITING, R.INTERRUPTED}),
    # Every state a run ends or stops in may run again: a resume (RUNNING) or `cadenza retry`
    # from outside (QUEUED, for the scheduler). A success only re-runs (backfill --rerun-all).
    R.WAITING: frozenset({R.RUNNING, R.QUEUED, R.CANCELLED}),
    R.INTERRUPTED: frozenset({R.RUNNING, R.QUEUED, R.CANCELLED}),
    # An ended run moves between ended states only when a person marks a task (actions.mark
    # recomputes it); a success is queued again when a person clears a task (actions.clear).
    R.FAILED: frozenset({R.RUNNING, R.QUEUED, R.SUCCESS}),
    R.CANCELLED: frozenset({R.RUNNING, R.QUEUED, R.SUCCESS, R.FAILED}),
    R.SUCCESS: frozenset({R.RUNNING, R.QUEUED, R.FAILED}),
}

RUN_ENDED: frozenset[RunState] = frozenset({R.SUCCESS, R.FAILED, R.CANCELLED})
"""States a runner ends a run in; nothing moves it on unless a person asks again."""

RUN_UNFINISHED: frozenset[RunState] = frozenset(
    {R.QUEUED, R.RUNNING, R.WAITING, R.INTERRUPTED}
)
"""States of a run that still has work to do: the scheduler and backfill resume these."""


def move_run(run: RunRecord, new: RunState) -> RunRecord:
    """Set ``run.state`` to ``new`` if the move is legal, else raise
    ``InvalidTransitionError``; return the run. Nothing is written: the caller commits it."""
    old = RunState(run.state)
    if new not in RUN_TRANSITIONS[old]:
        raise InvalidTransitionError(run_id=run.run_id, old=old.value, new=new.value)
    run.state = new.value
    return run
