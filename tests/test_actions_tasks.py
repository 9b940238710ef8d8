"""Task actions on every store: clear (a task, or it and its downstream) queues an ended run
again and runs just those tasks; mark sets a task success or failed with a reason and the
run's state follows; a gate rejected and then retried asks again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cadenza import Pipeline, actions
from cadenza.exceptions import CadenzaError
from cadenza.workspace import Workspace, locate

CALLS: list[str] = []
FAIL: set[str] = set()


def _called(name: str) -> None:
    CALLS.append(name)
    if name in FAIL:
        raise RuntimeError(f"{name} broke")


def acts() -> Pipeline:
    pipe = Pipeline("acts")

    @pipe.task(cache=False)
    def extract() -> int:
        _called("extract")
        return 1

    @pipe.task(cache=False)
    def clean(extract: int) -> int:
        _called("clean")
        return extract + 1

    @pipe.task(cache=False)
    def report(clean: int) -> str:
        _called("report")
        return f"rows {clean}"

    @pipe.task(cache=False, after=["clean"])
    def notify() -> None:
        _called("notify")

    @pipe.task(cache=False, after=["notify"])
    def archive() -> None:
        _called("archive")

    pipe.gate("promote", after=["report"], message="Ship these rows?")
    return pipe


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    CALLS.clear()
    FAIL.clear()
    if request.param == "memory":
        found = Workspace.memory(tmp_path)
    elif request.param == "sqlite":
        found = Workspace.open(tmp_path / ".cadenza")
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        found = Workspace.open(locate(tmp_path / ".cadenza", db=dsn))
    try:
        yield found
    finally:
        found.close()


def _states(ws: Workspace, run_id: str) -> dict[str, str]:
    return {ti.task: ti.state for ti in ws.store.task_instances(run_id, mapped=False)}


def test_clear_with_downstream_runs_those_tasks_again_and_keeps_the_rest(
        ws: Workspace) -> None:
    pipe = acts()
    first = pipe.run(workspace=ws, approve=["promote"])
    assert first.state == "success"
    CALLS.clear()
    cleared = actions.clear(ws.store, pipe, first.run_id, "notify", downstream=True, by="ana",
                            reason="the mail server was down")
    assert cleared == ["notify", "archive"]
    assert ws.store.get_run(first.run_id).state == "queued"
    assert _states(ws, first.run_id)["notify"] == "pending"
    event = next(e for e in ws.store.events(first.run_id) if e.kind == "task_cleared")
    assert (event.task, event.data["by"], event.data["reason"]) == (
        "notify", "ana", "the mail server was down")
    again = pipe.run(workspace=ws, resume=first.run_id)
    assert again.state == "success"
    assert sorted(CALLS) == ["archive", "notify"]  # extract, clean, report kept their results
    attempts = [a.attempt for a in ws.store.attempts(first.run_id, "notify")]
    assert attempts == [1, 2]  # the first attempt stays as history


def test_a_cleared_task_runs_again_though_its_cache_holds_its_result(ws: Workspace) -> None:
    pipe = Pipeline("cached_acts")

    @pipe.task
    def load() -> int:
        _called("load")
        return 1

    @pipe.task
    def total(load: int) -> int:
        _called("total")
        return load + 1

    first = pipe.run(workspace=ws)
    assert first.state == "success" and CALLS == ["load", "total"]
    CALLS.clear()
    actions.clear(ws.store, pipe, first.run_id, "total", by="ana", reason="re-run it")
    assert pipe.run(workspace=ws, resume=first.run_id).state == "success"
    assert CALLS == ["total"]  # as Airflow's clear: the cache does not answer for it
    assert _states(ws, first.run_id) == {"load": "success", "total": "success"}
    CALLS.clear()
    later = pipe.run(workspace=ws)
    assert {name: t.state for name, t in later.tasks.items()} == {"load": "cached",
                                                                  "total": "cached"}
    assert CALLS == []  # a clear counts for that run only


def test_clear_alone_leaves_its_downstream(ws: Workspace) -> None:
    pipe = acts()
    first = pipe.run(workspace=ws, approve=["promote"])
    CALLS.clear()
    assert actions.clear(ws.store, pipe, first.run_id, "clean", by="ana") == ["clean"]
    assert pipe.run(workspace=ws, resume=first.run_id).state == "success"
    assert CALLS == ["clean"]


def test_clear_and_mark_are_refused_in_a_run_that_has_not_ended(ws: Workspace) -> None:
    pipe = acts()
    waiting = pipe.run(workspace=ws)
    assert waiting.state == "waiting"
    with pytest.raises(CadenzaError, match=r"is waiting; a task can be cleared only in an "
                                           r"ended run"):
        actions.clear(ws.store, pipe, waiting.run_id, "clean", by="ana")
    queued = actions.trigger(ws.store, pipe, None)
    with pytest.raises(CadenzaError, match="is queued; a task can be marked only"):
        actions.mark(ws.store, pipe, queued, "clean", "failed", by="ana", reason="bad rows")


def test_mark_failed_then_success_moves_the_run_with_it(ws: Workspace) -> None:
    pipe = acts()
    run_id = pipe.run(workspace=ws, approve=["promote"]).run_id
    assert actions.mark(ws.store, pipe, run_id, "archive", "failed", by="bo",
                        reason="archive is corrupt") == "failed"
    ti = {t.task: t for t in ws.store.task_instances(run_id, mapped=False)}["archive"]
    assert (ti.state, ti.error) == ("failed", "marked failed by bo: archive is corrupt")
    assert ws.store.get_run(run_id).state == "failed"
    assert actions.mark(ws.store, pipe, run_id, "archive", "success", by="bo",
                        reason="restored from backup") == "success"
    marks = [e.data for e in ws.store.events(run_id) if e.kind == "task_marked"]
    assert [(m["state"], m["was"], m["by"], m["run_state"]) for m in marks] == [
        ("failed", "success", "bo", "failed"), ("success", "failed", "bo", "success")]


def test_a_task_marked_success_lets_its_downstream_run_on_a_retry(ws: Workspace) -> None:
    pipe = acts()
    FAIL.add("notify")
    run_id = pipe.run(workspace=ws, approve=["promote"]).run_id
    assert _states(ws, run_id)["archive"] == "upstream_failed"
    FAIL.clear()
    CALLS.clear()
    assert actions.mark(ws.store, pipe, run_id, "notify", "success", by="ana",
                        reason="sent by hand") == "failed"  # archive still did not run
    actions.retry(ws.store, run_id)
    assert pipe.run(workspace=ws, resume=run_id).state == "success"
    assert CALLS == ["archive"]


def test_a_task_marked_failed_is_what_a_retry_runs_again(ws: Workspace) -> None:
    pipe = acts()
    run_id = pipe.run(workspace=ws, approve=["promote"]).run_id
    actions.mark(ws.store, pipe, run_id, "clean", "failed", by="ana", reason="bad rows")
    CALLS.clear()
    actions.retry(ws.store, run_id)
    assert pipe.run(workspace=ws, resume=run_id).state == "success"
    assert CALLS == ["clean"]  # what succeeded after it keeps its results, as in any retry


def test_mark_success_is_refused_for_a_task_whose_value_is_read(ws: Workspace) -> None:
    pipe = acts()
    FAIL.add("clean")
    run_id = pipe.run(workspace=ws).run_id
    with pytest.raises(CadenzaError, match=r"'clean' cannot be marked success: report reads "
                                           r"its value.*cadenza clear"):
        actions.mark(ws.store, pipe, run_id, "clean", "success", by="ana", reason="fine")
    with pytest.raises(CadenzaError, match="needs a reason"):
        actions.mark(ws.store, pipe, run_id, "notify", "failed", by="ana", reason=" ")
    with pytest.raises(CadenzaError, match="has no task 'nope'"):
        actions.clear(ws.store, pipe, run_id, "nope", by="ana")


def test_a_rejected_gate_asks_again_after_a_retry(ws: Workspace) -> None:
    pipe = acts()
    run_id = pipe.run(workspace=ws).run_id
    actions.decide(ws.store, run_id, "promote", False, "bo", "too few rows")
    assert pipe.run(workspace=ws, resume=run_id).state == "failed"
    actions.retry(ws.store, run_id)
    again = pipe.run(workspace=ws, resume=run_id)
    assert again.state == "waiting"  # it asks again instead of failing in the same second
    assert actions.waiting_gates(ws.store, run_id) == ["promote"]
    waiting = actions.waiting_runs(ws.store, "acts", "promote")
    assert [(w.run.run_id, w.gate) for w in waiting] == [(run_id, "promote")]
    done, refused = actions.decide_many(ws.store, [(run_id, "promote")], True, "bo")
    assert (done, refused) == ([(run_id, "promote")], {})
    assert pipe.run(workspace=ws, resume=run_id).state == "success"
