"""Turn what an attempt raised into an Outcome: the state it ends in and why."""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.engine.retry import Retry
from cadenza.engine.states import TaskState
from cadenza.exceptions import (
    Cancelled,
    CheckFailedError,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
)


class Skip(Exception):
    """Raise inside a task to end it as ``skipped`` instead of failed."""


@dataclass(frozen=True)
class Outcome:
    state: TaskState
    kind: str
    """What the attempt record says: failed, timeout, crashed, cancelled or skipped."""


def classify(error: BaseException, retry: Retry, attempt: int) -> Outcome:
    """The one place that decides what an exception from attempt number ``attempt`` means."""
    if isinstance(error, Cancelled):
        return Outcome(TaskState.CANCELLED, "cancelled")
    if isinstance(error, Skip):
        return Outcome(TaskState.SKIPPED, "skipped")
    kind = (
        "timeout" if isinstance(error, TaskTimeoutError | TimeoutError)
        else "crashed" if isinstance(error, WorkerCrashedError)
        else "failed"
    )
    # Data that fails its checks, or a value no serializer can store, is the same next time.
    deterministic = isinstance(error, SerializationError | CheckFailedError)
    if not deterministic and retry.allows(error, attempt):
        return Outcome(TaskState.UP_FOR_RETRY, kind)
    return Outcome(TaskState.FAILED, kind)
