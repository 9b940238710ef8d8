"""`cadenza approve/reject --all PIPELINE GATE` on a backfill's six waiting runs, `cadenza
retry` after a rejection asking the gate again, and `cadenza clear` / `cadenza mark`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import Result

from cadenza.workspace import Workspace

DAILY = '''
from cadenza import Pipeline
pipe = Pipeline("daily", schedule="0 6 * * *", timezone="UTC", catchup=False)

@pipe.task(cache=False)
def extract() -> int:
    return 3

@pipe.task(cache=False)
def report(extract: int) -> str:
    return f"rows {extract}"

pipe.gate("publish", after=["report"], message="Publish the daily report?")

@pipe.task(cache=False, after=["publish"])
def send() -> None:
    print("sent")
'''

Cli = Callable[..., Result]


def _write(tmp_path: Path) -> str:
    path = tmp_path / "daily.py"
    path.write_text(DAILY)
    return str(path)


@contextmanager
def _opened(home: Path) -> Iterator[Workspace]:
    ws = Workspace.open(home, create=False)
    try:
        yield ws
    finally:
        ws.close()


def _waiting(home: Path) -> list[str]:
    with _opened(home) as ws:
        return sorted(r.run_id for r in ws.store.runs_in_states(["waiting"]))


def test_approve_all_decides_a_backfills_six_waiting_runs(cli: Cli, home: Path,
                                                          tmp_path: Path) -> None:
    target = _write(tmp_path)
    filled = cli("backfill", target, "--start", "2026-03-01", "--end", "2026-03-08")
    assert filled.exit_code == 1, filled.output  # six runs end waiting, none succeeded
    waiting = _waiting(home)
    assert len(waiting) == 6
    wrong = cli("approve", "--all", "daily", "publsh")
    assert wrong.exit_code == 2
    assert "No run of 'daily' waits at gate 'publsh'. Did you mean 'publish'?" in wrong.output
    approved = cli("approve", "--all", "daily", "publish", "--by", "dee")
    assert approved.exit_code == 0, approved.output
    assert "6 runs approved by dee" in approved.output
    for run_id in waiting:
        assert f"{run_id}: publish approved" in approved.output
    with _opened(home) as ws:
        by = {a.by for run_id in waiting for a in ws.store.approvals(run_id)}
    assert by == {"dee"}
    resumed = cli("run", "--resume", waiting[0], "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.output)["tasks"]["send"]["state"] == "success"
    none_left = cli("reject", "--all", "daily", "publish", "--reason", "late")
    assert none_left.exit_code == 2
    assert "Gates its runs wait at now: none." in none_left.output


def test_reject_all_needs_a_reason_and_retry_asks_the_gate_again(cli: Cli, home: Path,
                                                                 tmp_path: Path) -> None:
    target = _write(tmp_path)
    cli("backfill", target, "--start", "2026-03-01", "--end", "2026-03-03")
    run_id = _waiting(home)[0]
    assert "--reason" in cli("reject", "--all", "daily", "publish").output
    rejected = cli("reject", "--all", "daily", "publish", "--reason", "numbers look off")
    assert rejected.exit_code == 0 and "1 run rejected by" in rejected.output
    failed = cli("run", "--resume", run_id, "--json")
    assert json.loads(failed.output)["state"] == "failed"
    again = cli("retry", run_id, "--no-wait", "--json")
    assert json.loads(again.output)["state"] == "waiting", again.output
    assert json.loads(again.output)["tasks"]["publish"]["state"] == "awaiting_approval"
    cli("approve", run_id, "publish", "--by", "dee")
    assert json.loads(cli("run", "--resume", run_id, "--json").output)["state"] == "success"


def test_clear_and_mark_from_the_cli(cli: Cli, home: Path, tmp_path: Path) -> None:
    target = _write(tmp_path)
    first = cli("run", target, "--approve", "publish", "--json")
    assert first.exit_code == 0, first.output
    run_id = json.loads(first.output)["run_id"]
    cleared = cli("clear", run_id, "report", "--downstream", "--by", "ana", "--reason",
                  "source fixed")
    assert cleared.exit_code == 0, cleared.output
    assert f"cleared report, publish, send in run {run_id} (by ana)" in cleared.output
    refused = cli("clear", run_id, "report")
    assert refused.exit_code == 2
    assert f"Run {run_id} is queued; a task can be cleared only in an ended run" in \
        refused.output
    assert "Traceback" not in refused.output
    rerun = cli("run", "--resume", run_id, "--no-wait", "--json")
    data = json.loads(rerun.output)
    assert data["state"] == "waiting"  # the cleared gate asks again
    assert data["tasks"]["extract"]["state"] == "success"
    assert data["tasks"]["report"]["attempts"] == 2, data["tasks"]["report"]
    cli("approve", run_id, "publish")
    assert json.loads(cli("run", "--resume", run_id, "--json").output)["state"] == "success"

    marked = cli("mark", run_id, "send", "failed", "--reason", "mail bounced", "--by", "bo")
    assert marked.exit_code == 0, marked.output
    assert f"send marked failed by bo; run {run_id} is failed." in marked.output
    no_reason = cli("mark", run_id, "send", "success")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    consumed = cli("mark", run_id, "extract", "success", "--reason", "x")
    assert consumed.exit_code == 2
    assert "'extract' cannot be marked success: report reads its value" in consumed.output
    status = cli("status", run_id)
    assert "marked failed by bo: mail bounced" in status.output
    with _opened(home) as ws:
        kinds = [(e.kind, e.data.get("by")) for e in ws.store.events(run_id)
                 if e.kind in ("task_cleared", "task_marked")]
    assert kinds == [("task_cleared", "ana"), ("task_marked", "bo")]
