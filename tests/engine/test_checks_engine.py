"""Data checks on task outputs, through the run engine: an error blocks, a warning records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from cadenza import Pipeline, checks
from cadenza.cli import main
from cadenza.exceptions import UnknownInputError
from cadenza.workspace import Workspace


def customers(with_nulls: bool) -> Pipeline:
    pipe = Pipeline("customers")

    @pipe.task(retries=3)
    def clean() -> pd.DataFrame:
        ids = [1, None, 3] if with_nulls else [1, 2, 3]
        return pd.DataFrame({"id": ids, "spend": [10.0, 20.0, 999.0]})

    pipe.check("clean", checks.not_null(["id"]))
    pipe.check("clean", checks.in_range("spend", 0, 100), severity="warn")

    @pipe.check("clean", name="has_rows")
    def has_rows(frame: pd.DataFrame) -> bool:
        return len(frame) > 0

    @pipe.task
    def report(clean: pd.DataFrame) -> int:
        return len(clean)

    return pipe


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_a_failed_error_check_fails_the_task_once_and_blocks_downstream(
    home: Path, executor: str
) -> None:
    result = customers(with_nulls=True).run(home=home, executor=executor, workers=1)
    clean = result.tasks["clean"]
    assert clean.state == "failed" and len(clean.attempts) == 1  # no retry: data won't change
    assert "Check 'not_null(id)' on task 'clean' failed: 1 of 3 rows" in (clean.error or "")
    assert result.tasks["report"].state == "upstream_failed"
    recorded = {c["check"]: (c["passed"], c["severity"]) for c in clean.attempts[0].checks}
    assert recorded == {"not_null(id)": (False, "error"),
                        "in_range(spend, lo=0, hi=100)": (False, "warn"),
                        "has_rows": (True, "error")}


def test_a_failed_warning_is_recorded_and_the_run_goes_on(home: Path) -> None:
    result = customers(with_nulls=False).run(home=home)
    assert result.ok
    events = Workspace.open(home).store.events(result.run_id)
    kinds = sorted(e.kind for e in events if e.kind.startswith("check_"))
    assert kinds == ["check_passed", "check_passed", "check_warned"]
    warned = next(e for e in events if e.kind == "check_warned")
    assert warned.data["check"] == "in_range(spend, lo=0, hi=100)"
    assert "999" in warned.data["description"]


def test_a_check_that_raises_counts_as_failed() -> None:
    from cadenza.testing import run_in_memory

    pipe = Pipeline("raising")

    @pipe.task
    def value() -> int:
        return 1

    @pipe.check("value")
    def broken(v: int) -> bool:
        raise KeyError("column")

    result = run_in_memory(pipe)
    assert "the check raised KeyError" in (result.tasks["value"].error or "")


def test_a_check_on_an_unknown_task_is_a_definition_error() -> None:
    pipe = Pipeline("typo")

    @pipe.task
    def clean() -> int:
        return 1

    pipe.check("clen", lambda v: True)
    with pytest.raises(UnknownInputError, match="Did you mean 'clean'"):
        pipe.validate()


def test_status_shows_the_check_results(home: Path, tmp_path: Path) -> None:
    customers(with_nulls=False).run(home=home)
    runner = CliRunner()
    run_id = json.loads(runner.invoke(main, ["--home", str(home), "runs", "--json"]).output)[0][
        "run_id"]
    table = runner.invoke(main, ["--home", str(home), "status", run_id]).output
    assert "checks: 2 passed, 1 warned" in table
    data = json.loads(runner.invoke(main, ["--home", str(home), "status", run_id, "--json"]).output)
    clean = next(t for t in data["tasks"] if t["task"] == "clean")
    assert len(clean["attempts"][0]["checks"]) == 3
