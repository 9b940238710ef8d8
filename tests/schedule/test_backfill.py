"""Backfill: one run per interval; again, no duplicates and successes skipped; after a crash,
only the missing runs are created."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza import Pipeline, ctx
from cadenza.cli import main
from cadenza.exceptions import CadenzaError, InvalidOptionError
from cadenza.schedule.backfill import backfill, plan_backfill
from cadenza.workspace import Workspace

DAILY = '''
from cadenza import Pipeline, ctx
pipe = Pipeline("daily", schedule="@daily", timezone="Europe/London")

@pipe.task(cache="interval")
def day() -> str:
    if ctx.interval_start.startswith("2026-10-03") and ctx.params.get("fail_on") == "3":
        raise RuntimeError("bad day")
    return ctx.interval_start
'''


def daily(fail_on: str | None = None) -> Pipeline:
    pipe = Pipeline("daily", schedule="@daily", timezone="UTC")

    @pipe.task(cache="interval")
    def day() -> str:
        if fail_on and ctx.interval_start.startswith(fail_on):
            raise RuntimeError("bad day")
        return ctx.interval_start

    return pipe


def runs(home: Path) -> dict[str, str]:
    ws = Workspace.open(home)
    try:
        return {r.interval_start or "": r.state for r in ws.store.list_runs("daily", 1000)}
    finally:
        ws.close()


def test_one_run_per_interval_and_again_nothing_new(home: Path) -> None:
    items = backfill(daily(), "2026-10-01", "2026-10-08", home=home, parallel=3)
    assert [i.action for i in items] == ["created"] * 7
    assert all(i.state == "success" for i in items)
    assert len(runs(home)) == 7
    again = backfill(daily(), "2026-10-01", "2026-10-08", home=home)
    assert [i.action for i in again] == ["skipped"] * 7
    assert len(runs(home)) == 7


def test_rerun_failed_and_rerun_all(home: Path) -> None:
    first = backfill(daily(fail_on="2026-10-03"), "2026-10-01", "2026-10-05", home=home)
    assert [i.state for i in first] == ["success", "success", "failed", "success"]
    skipped = backfill(daily(), "2026-10-01", "2026-10-05", home=home)
    assert [i.action for i in skipped] == ["skipped"] * 4
    fixed = backfill(daily(), "2026-10-01", "2026-10-05", home=home, rerun_failed=True)
    assert [i.action for i in fixed] == ["skipped", "skipped", "rerun", "skipped"]
    assert all(i.state == "success" for i in fixed)
    everything = backfill(daily(), "2026-10-01", "2026-10-05", home=home, rerun_all=True)
    assert [i.action for i in everything] == ["rerun"] * 4
    ws = Workspace.open(home)
    attempts = ws.store.attempts(everything[0].run_id)
    assert [a.attempt for a in attempts] == [1, 2]  # run again, numbered on


def test_after_a_crash_only_the_missing_runs_are_created(home: Path) -> None:
    ws = Workspace.open(home)
    planned = plan_backfill(daily(), ws, "2026-10-01", "2026-10-04")  # the crash: runs made,
    assert [i.action for i in planned] == ["created"] * 3  # none of them started
    ws.close()
    backfill(daily(), "2026-10-01", "2026-10-02", home=home)  # k = 1 of them ran
    items = backfill(daily(), "2026-10-01", "2026-10-06", home=home)
    assert [i.action for i in items] == ["skipped", "resumed", "resumed", "created", "created"]
    assert len(runs(home)) == 5 and set(runs(home).values()) == {"success"}


def test_bad_ranges(home: Path) -> None:
    with pytest.raises(CadenzaError, match="has no schedule"):
        backfill(Pipeline("plain"), "2026-10-01", "2026-10-02", home=home)
    with pytest.raises(InvalidOptionError):
        backfill(daily(), "2026-10-05", "2026-10-01", home=home)
    with pytest.raises(CadenzaError, match="No whole interval"):
        backfill(daily(), "2026-10-01T01:00", "2026-10-01T05:00", home=home)
    with pytest.raises(InvalidOptionError, match="--parallel 0"):
        backfill(daily(), "2026-10-01", "2026-10-02", home=home, parallel=0)


def test_cli_schedule_backfill_pause(home: Path, tmp_path: Path) -> None:
    (tmp_path / "daily.py").write_text(DAILY)
    runner = CliRunner()

    def cli(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, ["--home", str(home), *args], catch_exceptions=False)

    shown = json.loads(cli("schedule", str(tmp_path / "daily.py"), "--next", "3",
                           "--after", "2026-10-24T12:00", "--json").output)
    assert shown["timezone"] == "Europe/London"
    assert [row["fires_at"] for row in shown["next"]] == [
        "2026-10-25T00:00:00+01:00", "2026-10-26T00:00:00+00:00", "2026-10-27T00:00:00+00:00"]
    assert shown["next"][1]["dst"] and "25h" in shown["next"][1]["dst"]
    result = cli("backfill", str(tmp_path / "daily.py"), "--start", "2026-10-01",
                 "--end", "2026-10-04", "--json")
    assert result.exit_code == 0, result.output
    assert [row["action"] for row in json.loads(result.output)] == ["created"] * 3
    again = json.loads(cli("backfill", str(tmp_path / "daily.py"), "--start", "2026-10-01",
                           "--end", "2026-10-04", "--json").output)
    assert [row["action"] for row in again] == ["skipped"] * 3
    assert "daily paused" in cli("pause", "daily").output
    assert Workspace.open(home).store.paused() == {"daily"}
    assert "daily unpaused" in cli("unpause", "daily").output
    bad = cli("schedule", str(tmp_path / "daily.py"), "--after", "yesterday")
    assert bad.exit_code == 2 and "is not an ISO date" in bad.output


def test_scheduler_once_serves_the_projects_pipelines(home: Path, tmp_path: Path) -> None:
    (tmp_path / "daily.py").write_text(DAILY.replace('"@daily"', '"* * * * *"'))
    (tmp_path / "cadenza.toml").write_text('pipelines = ["daily.py", "missing.py"]\n')
    result = CliRunner().invoke(
        main, ["--home", str(tmp_path / ".cadenza"), "scheduler", "--once"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "skipping" in result.output and "missing.py" in result.output
    assert "created daily-" in result.output and "started daily-" in result.output
    ws = Workspace.open(tmp_path / ".cadenza")
    [run] = ws.store.list_runs("daily")
    assert run.state == "success"
    assert datetime.fromisoformat(run.interval_end or "") <= datetime.now(UTC)
