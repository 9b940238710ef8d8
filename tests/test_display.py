"""The CLI's renderings: task tables, what went wrong in full, summaries that scale, progress."""

from __future__ import annotations

import io

from rich.console import Console

from cadenza import Pipeline
from cadenza._display import (
    FAILURE_LINES,
    LISTED,
    Progress,
    Row,
    problems,
    summary,
    task_table,
)
from cadenza.engine.states import TaskState as S

LONG = ("schema differs: missing country (object); id is float64, expected int64; "
        "spend is object, expected float64; signup is object, expected datetime64[ns]")


def render(*parts: object, width: int = 80, terminal: bool = False) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None,
                      markup=False, emoji=False, highlight=False)
    for part in parts:
        console.print(part, soft_wrap=not hasattr(part, "columns"))
    return out.getvalue()


def check(name: str, passed: bool, severity: str = "error", description: str = "") -> dict:  # type: ignore[type-arg]
    return {"check": name, "severity": severity, "passed": passed, "description": description,
            "metadata": {}}


def test_a_failed_check_and_a_warning_are_printed_in_full() -> None:
    rows = [Row("clean", "failed", 1, 1.0, 2.0, "Check 'schema' on task 'clean' failed: ...",
                checks=[check("schema(id, spend)", False, description=LONG),
                        check("psi_drift(spend)", False, "warn", "PSI 0.31 > 0.2 on spend"),
                        check("has_rows", True)]),
            Row("report", "upstream_failed")]
    text = render(*problems(rows), width=60)
    assert "clean: check schema(id, spend) failed" in text
    assert "signup is object, expected datetime64[ns]" in text  # past 100 characters: all there
    assert "clean: check psi_drift(spend) warned" in text and "PSI 0.31 > 0.2" in text
    assert "has_rows" not in text  # passed checks are only counted, in the table
    assert "failed:" not in text  # the error only repeats the failed check


def test_the_table_keeps_its_columns_and_the_details_keep_the_words() -> None:
    rows = [Row("a_long_task_name", "failed", 2, 1.0, 3.5, "ValueError: " + "x" * 300)]
    table = render(task_table(rows, 60), width=60)
    assert "a_long_task_name" in table and "failed" in table and "2.50s" in table
    assert all(len(line) <= 60 for line in table.splitlines())
    details = render(*problems(rows), width=60)
    assert "x" * 300 in details.replace("\n", "").replace(" ", "")


def test_retries_say_what_failed_before() -> None:
    rows = [Row("fetch", "success", 3, 1.0, 2.0, earlier_error="ConnectionError: reset\nmore")]
    text = render(*problems(rows))
    assert "fetch: 3 attempts, ended success" in text
    assert "before: ConnectionError: reset" in text


def test_past_a_screenful_the_summary_counts_and_names_only_problems() -> None:
    rows = [Row(f"w{i}", "success", 1, 1.0, 1.1) for i in range(500)]
    rows += [Row(f"bad{i}", "failed", 1, 1.0, 1.1, f"KeyError: key {i}") for i in range(15)]
    rows += [Row("late", "upstream_failed")]
    small = render(*summary(rows[:5], "r-1", 40))
    assert "w4" in small and "every task" not in small
    text = render(*summary(rows, "r-1", 40))
    assert "516 tasks:  failed 15  upstream_failed 1  success 500" in text
    assert "bad0 failed" in text and "KeyError: key 0" in text
    assert f"bad{LISTED}" not in text and "... and 5 more" in text
    assert "every task: cadenza status r-1" in text
    assert "w17" not in text
    assert len(text.splitlines()) < 40


def _graph(n: int) -> object:
    pipe = Pipeline("many")
    for i in range(n):
        pipe.task(name=f"t{i}")(lambda: 1)
    return pipe.graph()


def test_progress_off_a_terminal_prints_failures_not_every_task() -> None:
    from cadenza.store.base import RunRecord

    out = io.StringIO()
    progress = Progress(Console(file=out, width=80, color_system=None, markup=False))
    progress.before_run(RunRecord("many-1", "many", "running", {}, 0.0), _graph(300))  # type: ignore[arg-type]
    for i in range(300):
        progress.after_transition(f"t{i}", -1, S.PENDING, S.QUEUED)
        progress.after_transition(f"t{i}", -1, S.QUEUED, S.RUNNING)
        end = S.FAILED if i % 3 == 0 else S.SUCCESS
        progress.after_transition(f"t{i}", -1, S.RUNNING, end)
    lines = out.getvalue().splitlines()
    assert lines[0] == "run many-1: 300 tasks"
    assert "  t0 failed" in lines and "  t3 failed" in lines
    assert sum("failed" in line for line in lines) == FAILURE_LINES
    assert "counted, not listed" in lines[-1]
    assert not any("success" in line for line in lines)  # no line per task
