"""`cadenza cancel`, `approve` and `reject` (one run, or with --all every run waiting at a
gate): act on a run that is under way; `clear` and `mark`: act on a task of an ended run."""

from __future__ import annotations

import getpass
import time

import click

from cadenza import actions
from cadenza._loader import load_pipeline
from cadenza.cli._base import (
    _workspace,
    check_pipeline,
    console,
    did_you_mean,
    errors,
    main,
    resolve_run,
)
from cadenza.exceptions import CadenzaError
from cadenza.pipeline import Pipeline
from cadenza.store.base import effective_state
from cadenza.workspace import Workspace


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
@click.option("--all", "every", is_flag=True,
              help="RUN is a pipeline: approve GATE in every run of it that waits there.")
@click.pass_context
def approve(ctx: click.Context, run_id: str, gate: str, by: str | None, reason: str,
            every: bool) -> None:
    """Approve GATE in RUN: the tasks after it may run. With --all, RUN names a pipeline
    (`cadenza approve --all PIPELINE GATE`) and every run of it waiting at GATE is approved."""
    if every:
        _decide_all(ctx, run_id, gate, True, by, reason)
    else:
        _decide(ctx, run_id, gate, True, by, reason)


@main.command()
@click.argument("run_id", metavar="RUN")
@click.argument("gate", metavar="GATE")
@click.option("--reason", required=True, help="Why (recorded, and shown in the run).")
@click.option("--by", default=None, help="Who decides (default: your user name).")
@click.option("--all", "every", is_flag=True,
              help="RUN is a pipeline: reject GATE in every run of it that waits there.")
@click.pass_context
def reject(ctx: click.Context, run_id: str, gate: str, reason: str, by: str | None,
           every: bool) -> None:
    """Reject GATE in RUN: it fails, and the tasks after it do not run. With --all, RUN
    names a pipeline and every run of it waiting at GATE is rejected."""
    if every:
        _decide_all(ctx, run_id, gate, False, by, reason)
    else:
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


def _decide_all(ctx: click.Context, pipeline: str, gate: str, approved: bool,
                by: str | None, reason: str) -> None:
    with _workspace(ctx, write=True) as ws:
        check_pipeline(ws, pipeline)
        waiting = actions.waiting_runs(ws.store, pipeline, gate, most=None)
        if not waiting:
            gates = sorted({w.gate for w in actions.waiting_runs(ws.store, pipeline)})
            raise CadenzaError(
                f"No run of {pipeline!r} waits at gate {gate!r}.{did_you_mean(gate, gates)} "
                f"Gates its runs wait at now: {', '.join(gates) or 'none'}."
            )
        who = by or getpass.getuser()
        done, refused = actions.decide_many(
            ws.store, [(w.run.run_id, w.gate) for w in waiting], approved, who, reason)
        word = "approved" if approved else "rejected"
        for run_id, _ in done:
            console.print(f"{run_id}: {gate} {word}", highlight=False)
        for run_id, why in refused.items():
            errors.print(f"{run_id}: not decided: {why}", soft_wrap=True)
        console.print(f"{len(done)} run{'s' if len(done) != 1 else ''} {word} by {who}. A "
                      "running scheduler (cadenza scheduler, cadenza ui) goes on with them; "
                      "or one at a time: cadenza run --resume RUN", highlight=False,
                      soft_wrap=True)
        if refused:
            raise SystemExit(1)


# -- task actions -----------------------------------------------------------------------------

def _pipeline_of(ws: Workspace, run_id: str) -> Pipeline:
    target = ws.store.get_run(run_id).target
    if not target:
        raise CadenzaError(f"Run {run_id} did not record its pipeline file, which clear and "
                           "mark need to know its tasks; re-run it with cadenza run FILE.")
    return load_pipeline(target)


@main.command()
@click.argument("run_id", metavar="RUN")
@click.argument("task", metavar="TASK")
@click.option("--downstream", is_flag=True, help="Clear every task after TASK too.")
@click.option("--by", default=None, help="Who clears (default: your user name).")
@click.option("--reason", default="", help="Why (recorded with the run).")
@click.pass_context
def clear(ctx: click.Context, run_id: str, task: str, downstream: bool, by: str | None,
          reason: str) -> None:
    """Clear TASK in an ended RUN: it goes back to pending (its attempts stay as history) and
    the run is queued again, so TASK runs again while the other tasks keep their results."""
    with _workspace(ctx, write=True) as ws:
        run_id = resolve_run(ws, run_id)
        pipe = _pipeline_of(ws, run_id)
        who = by or getpass.getuser()
        names = actions.clear(ws.store, pipe, run_id, task, downstream=downstream, by=who,
                              reason=reason)
        console.print(f"cleared {', '.join(names)} in run {run_id} (by {who}); the run is "
                      "queued: a running scheduler (cadenza scheduler, cadenza ui) runs it, "
                      f"or now: cadenza run --resume {run_id} (add --force to ignore the "
                      "cache)", highlight=False, soft_wrap=True)


@main.command()
@click.argument("run_id", metavar="RUN")
@click.argument("task", metavar="TASK")
@click.argument("state", type=click.Choice(["success", "failed"]))
@click.option("--reason", required=True, help="Why (recorded, and shown in the run).")
@click.option("--by", default=None, help="Who marks (default: your user name).")
@click.pass_context
def mark(ctx: click.Context, run_id: str, task: str, state: str, reason: str,
         by: str | None) -> None:
    """Mark TASK in an ended RUN success or failed by hand; the run's state follows its
    tasks. Nothing runs: a retry then runs what did not succeed, as always."""
    with _workspace(ctx, write=True) as ws:
        run_id = resolve_run(ws, run_id)
        pipe = _pipeline_of(ws, run_id)
        who = by or getpass.getuser()
        now = actions.mark(ws.store, pipe, run_id, task, state, by=who, reason=reason)
        console.print(f"{task} marked {state} by {who}; run {run_id} is {now}.",
                      highlight=False)
