"""The run report: the critical path, in `cadenza status` and its JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from cadenza import Pipeline
from cadenza.cli import main
from cadenza.report import critical_path
from cadenza.store.base import TaskInstanceRecord


def test_the_critical_path_follows_what_ended_last(home: Path) -> None:
    pipe = Pipeline("paths")

    @pipe.task(cache=False)
    def extract() -> int:
        return 1

    @pipe.task(cache=False)
    def slow(extract: int) -> int:
        time.sleep(0.3)
        return extract

    @pipe.task(cache=False)
    def fast(extract: int) -> int:
        return extract

    @pipe.task(cache=False)
    def join(slow: int, fast: int) -> int:
        return slow + fast

    result = pipe.run(home=home, executor="threads", workers=2)
    runner = CliRunner()
    data = json.loads(runner.invoke(main, ["--home", str(home), "status", result.run_id,
                                           "--json"]).output)
    assert data["critical_path"] == ["extract", "slow", "join"]
    text = runner.invoke(main, ["--home", str(home), "status", result.run_id]).output
    assert "critical path: extract → slow → join" in text


def test_tasks_that_did_not_run_are_left_out() -> None:
    def ti(task: str, start: float | None, end: float | None) -> TaskInstanceRecord:
        return TaskInstanceRecord("r", task, -1, "success", started_at=start, ended_at=end)

    upstream = {"a": [], "b": ["a"], "c": ["b"]}
    assert critical_path([ti("a", None, None), ti("b", 1, 2), ti("c", 2, 3)], upstream) == [
        "b", "c"]
    assert critical_path([], upstream) == []
