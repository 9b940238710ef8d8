"""`cadenza cancel`, `approve` and `reject`: act on a run that is under way."""

from __future__ import annotations

import getpass
import time

import click

from cadenza.cli._base import (
    _workspace,
    console,
    main,
)
from cadenza.engine.states import TERMINAL, TaskState
from cadenza.exceptions import CadenzaError
from cadenza.store.base import Approval, Batch, Event, RunRecord, effective_state
from cadenza.workspace import Workspace


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option("--wait", type=float, default=10.0, show_default=True,
              help="Seconds to wait for a live runner to stop its tasks.")
@click.pass_context
def cancel(ctx: click.Context, run_id: str, wait: float) -> None:
    """Cancel a run: its runner stops running tasks and records them cancelled."""
    with _workspace(ctx) as ws:
        record = ws.store.get_run(run_id)
        state = effective_state(record)
        if state != "running":
            if record.state != "running":
                console.print(f"run {run_id} is not running (it ended {record.state}).")
                return
            _cancel_dead_run(ws, record)
            console.print(f"run {run_id}: its runner was gone; recorded as cancelled.")
            return
        ws.store.request_cancel(run_id)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if ws.store.get_run(run_id).state != "running":
                console.print(f"run {run_id} cancelled.")
                return
            time.sleep(0.2)
        console.print(f"cancel requested for run {run_id}; the runner has not confirmed yet.")


@main.command()
@click.argument("run_id", metavar="RUN")
@click.argument("gate", metavar="GATE")
@click.option("--by", default=None, help="Who decides (default: your user name).")
@click.option("--reason", default="", help="Why.")
@click.pass_context
def approve(ctx: click.Context, run_id: str, gate: str, by: str | None, reason: str) -> None:
    """Approve GATE in RUN: the tasks after it may run."""
    _decide(ctx, run_id, gate, True, by, reason)


@main.command()
@click.argument("run_id", metavar="RUN")
@click.argument("gate", metavar="GATE")
@click.option("--reason", required=True, help="Why (recorded, and shown in the run).")
@click.option("--by", default=None, help="Who decides (default: your user name).")
@click.pass_context
def reject(ctx: click.Context, run_id: str, gate: str, reason: str, by: str | None) -> None:
    """Reject GATE in RUN: it fails, and the tasks after it do not run."""
    _decide(ctx, run_id, gate, False, by, reason)


def _decide(ctx: click.Context, run_id: str, gate: str, approved: bool, by: str | None,
            reason: str) -> None:
    with _workspace(ctx) as ws:
        record = ws.store.get_run(run_id)
        states = {ti.task: ti.state for ti in ws.store.task_instances(run_id)
                  if ti.map_index < 0}
        if states.get(gate) != TaskState.AWAITING_APPROVAL:
            waiting = sorted(t for t, s in states.items() if s == TaskState.AWAITING_APPROVAL)
            raise CadenzaError(
                f"Task {gate!r} in run {run_id} is not waiting for approval (it is "
                f"{states.get(gate, 'not in this run')}). Gates waiting now: "
                f"{', '.join(waiting) or 'none'}."
            )
        who = by or getpass.getuser()
        ws.store.decide(Approval(run_id, gate, approved, who, time.time(), reason))
        word = "approved" if approved else "rejected"
        if effective_state(record) == "running":
            console.print(f"{gate} {word} by {who}; the run goes on.", highlight=False)
        else:
            console.print(f"{gate} {word} by {who}. Continue the run with: "
                          f"cadenza run --resume {run_id}", highlight=False)


def _cancel_dead_run(ws: Workspace, record: RunRecord) -> None:
    batch = Batch()
    now = time.time()
    for ti in ws.store.task_instances(record.run_id):
        if TaskState(ti.state) not in TERMINAL:
            ti.state, ti.ended_at = TaskState.CANCELLED.value, now
            batch.task_instances.append(ti)
    record.state, record.ended_at = "cancelled", now
    batch.runs.append(record)
    batch.events.append(Event(record.run_id, "run_finished", now, data={"state": "cancelled"}))
    ws.store.apply(batch)
