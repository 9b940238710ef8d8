"""`cadenza status` lists a run's tasks in DAG order, and the CLI's counts agree with their
nouns (issue 16, part 7)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import Result
from tests.web._polish_world import DAG_ORDER, TARGET, add_ordered_run

from cadenza.workspace import Workspace


def test_status_lists_tasks_in_dag_order_not_by_start_or_name(
        cli: Callable[..., Result], home: Path) -> None:
    ws = Workspace.open(home)
    try:
        run_id = add_ordered_run(ws)  # started zeta, alpha, mid, omega
    finally:
        ws.close()
    shown = cli("status", run_id)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    rows = [next(i for i, line in enumerate(lines) if f" {task} " in f" {line} ")
            for task in DAG_ORDER]
    assert rows == sorted(rows), shown.output
    as_json = cli("status", run_id, "--json")
    assert [t["task"] for t in json.loads(as_json.output)["tasks"]] == DAG_ORDER


def test_show_says_one_retry_and_counts_tasks(cli: Callable[..., Result]) -> None:
    shown = cli("show", TARGET, "--format", "markdown")
    assert shown.exit_code == 0, shown.output
    assert "| mid | zeta | return value | yes (cached) | 1 retry, backoff" in shown.output
    assert "1 retries" not in shown.output
    text = cli("show", TARGET)
    assert text.output.splitlines()[0] == "pipeline polish_demo (4 tasks)"
