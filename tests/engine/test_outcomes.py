"""classify: the one place an attempt's exception becomes a state and a kind."""

from __future__ import annotations

import pytest

from cadenza import (
    Cancelled,
    Retry,
    Skip,
    TaskError,
    TaskState,
    TaskTimeoutError,
    WorkerCrashedError,
)
from cadenza.engine.outcomes import Outcome, classify

S = TaskState
RETRY = Retry(2)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ValueError("x"), "failed"),
        (TaskError("x"), "failed"),
        (TaskTimeoutError("slow"), "timeout"),
        (TimeoutError(), "timeout"),
        (WorkerCrashedError("died", exitcode=-9), "crashed"),
    ],
)
def test_failures_retry_while_attempts_are_left(error: BaseException, kind: str) -> None:
    assert classify(error, RETRY, 1) == Outcome(S.UP_FOR_RETRY, kind)
    assert classify(error, RETRY, 2) == Outcome(S.UP_FOR_RETRY, kind)
    assert classify(error, RETRY, 3) == Outcome(S.FAILED, kind)
    assert classify(error, Retry(), 1) == Outcome(S.FAILED, kind)


@pytest.mark.parametrize("attempt", [1, 5])
def test_cancelled_is_never_retried(attempt: int) -> None:
    assert classify(Cancelled(), Retry(10, retry_on=(BaseException,)), attempt) == Outcome(
        S.CANCELLED, "cancelled"
    )


def test_skip_ends_skipped() -> None:
    assert classify(Skip("not today"), RETRY, 1) == Outcome(S.SKIPPED, "skipped")


def test_non_retryable_fails_at_once() -> None:
    policy = Retry(3, non_retryable=(KeyError,))
    assert classify(KeyError("k"), policy, 1) == Outcome(S.FAILED, "failed")
    assert classify(ValueError("v"), policy, 1) == Outcome(S.UP_FOR_RETRY, "failed")


def test_timeout_not_in_retry_on_fails() -> None:
    policy = Retry(3, retry_on=(OSError,))
    assert classify(TaskTimeoutError("slow"), policy, 1) == Outcome(S.FAILED, "timeout")
    assert classify(ConnectionError(), policy, 1) == Outcome(S.UP_FOR_RETRY, "failed")


def test_keyboard_interrupt_is_a_failure_not_retried() -> None:
    assert classify(KeyboardInterrupt(), RETRY, 1) == Outcome(S.FAILED, "failed")
