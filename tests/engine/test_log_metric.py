"""``ctx.log_metric``: numbers a task records about an attempt, stored as an event of the run
(on the inline and the processes executors) and refused, with the fix, when malformed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza import Pipeline, ctx
from cadenza.workspace import Workspace


def metric_pipeline() -> Pipeline:
    pipe = Pipeline("metered")

    @pipe.task(cache=False)
    def train() -> str:
        ctx.log_metric("roc_auc", 0.5)
        ctx.log_metric("roc_auc", 0.875)  # the last value is kept
        ctx.log_metric("rows", 120)
        return "model"

    @pipe.task(cache=False)
    def quiet(train: str) -> str:
        return train

    return pipe


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_logged_metrics_are_stored_with_the_attempt(home: Path, executor: str) -> None:
    result = metric_pipeline().run(home=home, executor=executor)
    assert result.state == "success"
    ws = Workspace.open(home)
    try:
        found = [e for e in ws.store.events(result.run_id) if e.kind == "metrics_logged"]
    finally:
        ws.close()
    assert len(found) == 1
    assert found[0].task == "train" and found[0].map_index == -1
    assert found[0].data == {"attempt": 1, "metrics": {"roc_auc": 0.875, "rows": 120.0}}


@pytest.mark.parametrize(("name", "value", "says"), [
    ("", 1.0, "name a metric"), ("a b", 1.0, "name a metric"), ("auc", float("nan"), "finite"),
    ("auc", "0.9", "finite number"), ("auc", True, "finite number"),
])
def test_a_bad_metric_fails_the_task_with_the_fix(home: Path, name: object, value: object,
                                                  says: str) -> None:
    pipe = Pipeline("bad_metric")

    @pipe.task(cache=False)
    def train() -> None:
        ctx.log_metric(name, value)

    result = pipe.run(home=home)
    error = result.tasks["train"].error or ""
    assert result.state == "failed" and says in error and "\n" not in error


def test_log_metric_outside_a_task_says_where_it_works() -> None:
    with pytest.raises(Exception, match="only available while a task runs"):
        ctx.log_metric("auc", 0.9)
