"""SLAs and the pipeline's alert callbacks: on_failure, on_retry, on_success, on_sla_miss."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cadenza import Pipeline, Retry
from cadenza.exceptions import InvalidOptionError
from cadenza.store.base import Event
from cadenza.workspace import Workspace


def test_callbacks_get_failure_retry_and_success_events(home: Path) -> None:
    seen: list[tuple[str, str | None, dict[str, object]]] = []

    def note(event: Event) -> None:
        seen.append((event.kind, event.task, event.data))

    pipe = Pipeline("alerting", on_failure=note, on_retry=note, on_success=note)
    tries: list[int] = []

    @pipe.task(retries=Retry(1, backoff=0), cache=False)
    def flaky() -> None:
        tries.append(1)
        raise ValueError(f"try {len(tries)}")

    result = pipe.run(home=home)
    assert result.state == "failed"
    assert seen == [
        ("up_for_retry", "flaky", {"attempt": 1, "error": "ValueError: try 1"}),
        ("failed", "flaky", {"attempt": 2, "error": "ValueError: try 2"}),
        ("run_finished", None, {"state": "failed"}),
    ]
    seen.clear()
    ok = Pipeline("fine", on_success=note, on_failure=note)

    @ok.task
    def one() -> int:
        return 1

    ok.run(home=home)
    assert seen == [("run_finished", None, {"state": "success"})]


def test_a_callback_that_raises_is_recorded_and_the_run_goes_on(home: Path) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("webhook down")

    pipe = Pipeline("loud", on_success=broken)

    @pipe.task
    def one() -> int:
        return 1

    result = pipe.run(home=home)
    assert result.ok
    events = Workspace.open(home).store.events(result.run_id)
    errors = [e.data for e in events if e.kind == "callback_error"]
    assert errors == [{"callback": "on_success", "error": "RuntimeError: webhook down"}]


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_sla_misses_are_events_and_alerts(home: Path, executor: str) -> None:
    misses: list[Event] = []
    pipe = Pipeline("late", sla=0.2, on_sla_miss=misses.append)

    @pipe.task(sla=0.1, cache=False)
    def slow() -> None:
        time.sleep(0.4)

    @pipe.task(sla=60, cache=False)
    def quick() -> None:
        return None

    result = pipe.run(home=home, executor=executor)
    assert result.ok
    # inline runs quick after slow, so quick too is done only after the run's deadline
    run_late = ["slow", "quick"] if executor == "inline" else ["slow"]
    assert sorted((e.task or "", e.data["waiting_on"]) for e in misses) == [
        ("", run_late), ("slow", ["slow"])]
    stored = [e for e in Workspace.open(home).store.events(result.run_id)
              if e.kind == "sla_missed"]
    assert len(stored) == 2


def test_bad_sla_and_callbacks() -> None:
    with pytest.raises(InvalidOptionError, match="sla='soon'"):
        Pipeline("p", sla="soon")
    with pytest.raises(InvalidOptionError, match="on_failure='email me'"):
        Pipeline("p", on_failure="email me")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="sla=-5"):
        Pipeline("p").task(lambda: None, name="t", sla=-5)
