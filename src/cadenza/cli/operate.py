"""`cadenza cancel`, `approve` and `reject`: act on a run that is under way."""

from __future__ import annotations

import getpass
import time

import click

from cadenza import actions
from cadenza.cli._base import _workspace, console, did_you_mean, main, resolve_run
from cadenza.exceptions import CadenzaError
from cadenza.store.base import effective_state


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option("--wait", type=float, default=10.0, show_default=True,
              help="Seconds to wait for a live runner to stop its tasks.")
@click.pass_context
def cancel(ctx: click.Context, run_id: str, wait: float) -> None:
    """Cancel a run: its runner stops running tasks and records them cancelled."""
    with _workspace(ctx, write=True) as ws:
        run_id = resolve_run(ws, run_id)
        outcome = actions.cancel(ws.store, run_id)
        if outcome == "cancelled":
            console.print(f"run {run_id}: no runner was running it; recorded as cancelled.")
            return
        if outcome != "requested":
            console.print(f"run {run_id} is not running (it ended {outcome}).")
            return
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
    with _workspace(ctx, write=True) as ws:
        run_id = resolve_run(ws, run_id)
        tasks = {ti.task for ti in ws.store.task_instances(run_id, mapped=False)}
        if gate not in tasks:
            waiting = actions.waiting_gates(ws.store, run_id)
            raise CadenzaError(
                f"Run {run_id} has no task {gate!r}.{did_you_mean(gate, waiting or tasks)} "
                f"Gates waiting now: {', '.join(waiting) or 'none'}."
            )
        who = by or getpass.getuser()
        record = actions.decide(ws.store, run_id, gate, approved, who, reason)
        word = "approved" if approved else "rejected"
        if effective_state(record, ws.store.clock()) == "running":
            console.print(f"{gate} {word} by {who}; the run goes on.", highlight=False)
        else:
            console.print(f"{gate} {word} by {who}. Continue the run with: "
                          f"cadenza run --resume {run_id}", highlight=False)
