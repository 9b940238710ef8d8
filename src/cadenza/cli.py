"""The `cadenza` command. Exit codes: 0 success, 1 a run did not succeed, 2 bad input."""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cadenza._display import (
    Progress,
    duration,
    result_json,
    styled,
    task_table,
)
from cadenza._loader import load_pipeline
from cadenza.engine.plan import plan_pipeline
from cadenza.engine.result import RunResult
from cadenza.engine.run import run_pipeline, select
from cadenza.engine.states import TERMINAL, TaskState
from cadenza.exceptions import CadenzaError
from cadenza.executors import EXECUTORS
from cadenza.params import as_param, parse_assignments, resolve_params
from cadenza.pipeline import Pipeline
from cadenza.show import FORMATS, render
from cadenza.store.base import Approval, Batch, Event, RunRecord, effective_state
from cadenza.workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_EXECUTOR = "threads"
EXIT_FAILED = 1
EXIT_USAGE = 2

console = Console()
errors = Console(stderr=True)


class _Group(click.Group):
    """Turns every CadenzaError into one red line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CadenzaError as exc:
            errors.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True,
                         soft_wrap=True)
            sys.exit(EXIT_USAGE)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="CADENZA_HOME",
              help="The .cadenza folder holding state (default: found from here upward).")
@click.version_option(package_name="cadenza")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """cadenza: run data and ML pipelines of plain Python functions, durably and incrementally."""
    ctx.obj = {"home": home}


@contextmanager
def _workspace(ctx: click.Context) -> Iterator[Workspace]:
    ws = Workspace.open(ctx.obj["home"])
    try:
        yield ws
    finally:
        ws.close()


def _json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def _params_option(fn: F) -> F:
    return click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
                        help="Set a run param (repeatable).")(fn)


def _selection_options(fn: F) -> F:
    fn = click.option("--only", multiple=True, metavar="TASK",
                      help="Run only this task (repeatable); others reuse stored outputs.")(fn)
    fn = click.option("--from", "from_", multiple=True, metavar="TASK",
                      help="Run this task and everything downstream of it.")(fn)
    return click.option("--force", is_flag=True, help="Ignore the cache: run every task.")(fn)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


# -- run ------------------------------------------------------------------------------------


def _execute(ctx: click.Context, pipe: Pipeline, as_json: bool, quiet: bool,
             show_output: str | None = None, **options: Any) -> RunResult:
    cancel = threading.Event()
    hooks = [] if as_json or quiet else [Progress(console)]
    previous = signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    try:
        with _workspace(ctx) as ws:
            result = run_pipeline(pipe, workspace=ws, hooks=hooks, cancel=cancel, **options)
            _report(result, ws, as_json, quiet)
            if show_output and result.ok and not as_json:
                console.print("output:", repr(result.output(show_output))[:2000],
                              highlight=False)
    except KeyboardInterrupt:
        errors.print("[red]interrupted: the run was cancelled and its state recorded.[/]")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return result


def _report(result: RunResult, ws: Workspace, as_json: bool, quiet: bool) -> None:
    if as_json:
        _print_json(result_json(result))
        return
    run = ws.store.get_run(result.run_id)
    if not quiet:
        attempts = {name: len(t.attempts) for name, t in result.tasks.items()}
        order = list(result.tasks)
        console.print(task_table(ws.store.task_instances(result.run_id), attempts, order))
    took = duration(run.started_at, run.ended_at)
    console.print(Text.assemble(f"run {result.run_id} ", styled(result.state), f" in {took}"))
    if not result.ok:
        bad = [n for n, t in result.tasks.items() if t.state == "failed"]
        if bad:
            console.print(f"  see why: cadenza logs {result.run_id} {bad[0]}", highlight=False)
        console.print(f"  resume:  cadenza run --resume {result.run_id}", highlight=False)


@main.command()
@click.argument("target", required=False)
@_params_option
@click.option("--executor", "-e", type=click.Choice(EXECUTORS), default=DEFAULT_EXECUTOR,
              show_default=True, help="Where tasks run.")
@click.option("--workers", "-w", type=int, help="Worker slots (default: CPU count).")
@_selection_options
@click.option("--resume", metavar="RUN", help="Continue this run: re-run what did not succeed.")
@click.option("--approve", multiple=True, metavar="GATE", help="Approve this gate up front.")
@click.option("--no-wait", is_flag=True,
              help="Do not wait for gates: end the run `waiting`; resume it after approval.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final line.")
@_json_option
@click.pass_context
def run(ctx: click.Context, target: str | None, params: tuple[str, ...], executor: str,
        workers: int | None, only: tuple[str, ...], from_: tuple[str, ...], force: bool,
        resume: str | None, approve: tuple[str, ...], no_wait: bool, quiet: bool,
        as_json: bool) -> None:
    """Run a pipeline: TARGET is a .py file, a folder with pipeline.py, or a module,
    optionally followed by :PIPELINE."""
    if resume is not None:
        with _workspace(ctx) as ws:
            record = ws.store.get_run(resume)
        if effective_state(record) == "running":
            raise CadenzaError(f"Run {resume} is still running (pid {record.runner_pid}).")
        target = target or record.target
        if not target:
            raise CadenzaError(f"Run {resume} did not record its pipeline file; give TARGET.")
    if target is None:
        raise click.UsageError("give the pipeline to run: cadenza run TARGET")
    pipe = load_pipeline(target)
    result = _execute(
        ctx, pipe, as_json, quiet, params=parse_assignments(params), executor=executor,
        workers=workers, only=only or None, from_=from_ or None, force=force, resume=resume,
        target=target, params_from_text=True, approve=approve, wait=not no_wait,
    )
    sys.exit(0 if result.ok else EXIT_FAILED)


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option("--executor", "-e", type=click.Choice(EXECUTORS), default=DEFAULT_EXECUTOR)
@click.option("--workers", "-w", type=int)
@_json_option
@click.pass_context
def retry(ctx: click.Context, run_id: str, executor: str, workers: int | None,
          as_json: bool) -> None:
    """Re-run what did not succeed in RUN (same as run --resume RUN)."""
    ctx.invoke(run, target=None, params=(), executor=executor, workers=workers, only=(),
               from_=(), force=False, resume=run_id, approve=(), no_wait=False, quiet=False,
               as_json=as_json)


@main.command()
@click.argument("target")
@click.argument("task")
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=PATH",
              help="Feed upstream NAME from a file (.json, .parquet, .csv, .pkl, or text).")
@_params_option
@_json_option
@click.pass_context
def task(ctx: click.Context, target: str, task: str, inputs: tuple[str, ...],
         params: tuple[str, ...], as_json: bool) -> None:
    """Run one TASK of a pipeline alone; its inputs come from --input files or earlier runs."""
    pipe = load_pipeline(target)
    nodes = pipe.graph().nodes
    if task not in nodes:
        raise CadenzaError(
            f"Pipeline {pipe.name!r} has no task {task!r}; its tasks are {list(nodes)}."
        )
    provided = {name: _read_input(name, path) for name, path in parse_assignments(inputs).items()}
    for name in provided:
        if name not in nodes[task].inputs:
            raise CadenzaError(
                f"--input {name!r}: task {task!r} takes no input of that name; its inputs are "
                f"{list(nodes[task].inputs)}."
            )
    result = _execute(ctx, pipe, as_json, False, show_output=task,
                      params=parse_assignments(params), executor="inline", only=[task],
                      provided=provided, target=target, params_from_text=True)
    sys.exit(0 if result.ok else EXIT_FAILED)


def _read_input(name: str, text: str) -> Any:
    path = Path(text)
    if not path.is_file():
        raise CadenzaError(f"--input {name}={text!r}: no such file.")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return json.loads(path.read_text())
    if suffix in (".parquet", ".csv"):
        import pandas as pd  # type: ignore[import-untyped]

        return pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    if suffix in (".pkl", ".pickle"):
        import pickle

        with open(path, "rb") as handle:
            return pickle.load(handle)  # a file the user named on their own command line
    return path.read_text()


# -- looking -------------------------------------------------------------------------------


@main.command()
@click.argument("target")
@_params_option
@_selection_options
@_json_option
@click.pass_context
def plan(ctx: click.Context, target: str, params: tuple[str, ...], only: tuple[str, ...],
         from_: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Say what a run would do now, task by task, and why."""
    pipe = load_pipeline(target)
    values = resolve_params(pipe.name, pipe.params, parse_assignments(params), from_text=True)
    selected = select(pipe, pipe.graph(), only or None, from_ or None)
    with _workspace(ctx) as ws:
        steps = plan_pipeline(pipe, ws, values, force=force, selected=selected)
    shown = {k: ("***" if as_param(pipe.params[k]).secret else v) for k, v in values.items()}
    if as_json:
        _print_json({"pipeline": pipe.name, "params": shown, "tasks": [
            {"task": s.task, "runs": s.runs, "reason": s.reason} for s in steps]})
        return
    if values:
        console.print(f"params: {json.dumps(shown, default=str)}", highlight=False)
    table = Table(show_edge=False, header_style="bold")
    for column in ("task", "will", "why"):
        table.add_column(column)
    for step in steps:
        will = Text("run", style="yellow") if step.runs else Text("skip", style="cyan")
        table.add_row(step.task, will, step.reason)
    console.print(table)
    count = sum(s.runs for s in steps)
    console.print(f"{count} of {len(steps)} tasks would run.", highlight=False)


@main.command()
@click.argument("target")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default="text",
              show_default=True)
def show(target: str, fmt: str) -> None:
    """Print the DAG: text, Mermaid, JSON, or a Markdown orchestration plan."""
    click.echo(render(load_pipeline(target), fmt))


@main.command()
@click.option("--pipeline", help="Only this pipeline's runs.")
@click.option("--limit", "-n", type=int, default=20, show_default=True)
@_json_option
@click.pass_context
def runs(ctx: click.Context, pipeline: str | None, limit: int, as_json: bool) -> None:
    """List recent runs, newest first."""
    with _workspace(ctx) as ws:
        records = ws.store.list_runs(pipeline, limit)
    if as_json:
        _print_json([_run_json(r) for r in records])
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("run", "pipeline", "state", "started", "duration"):
        table.add_column(column, no_wrap=True)
    for r in records:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at or r.created_at))
        table.add_row(r.run_id, r.pipeline, styled(effective_state(r)), started,
                      duration(r.started_at, r.ended_at))
    console.print(table if records else "no runs yet")


def _run_json(r: RunRecord) -> dict[str, Any]:
    return {
        "run_id": r.run_id, "pipeline": r.pipeline, "state": effective_state(r),
        "params": r.params, "created_at": r.created_at, "started_at": r.started_at,
        "ended_at": r.ended_at, "target": r.target,
    }


@main.command()
@click.argument("run_id", metavar="RUN")
@_json_option
@click.pass_context
def status(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run's tasks: state, attempts, duration, error."""
    with _workspace(ctx) as ws:
        record = ws.store.get_run(run_id)
        instances = ws.store.task_instances(run_id)
        attempts = ws.store.attempts(run_id)
    counts = Counter(a.task for a in attempts)
    if as_json:
        data = _run_json(record)
        data["tasks"] = [
            {"task": ti.task, "map_index": ti.map_index, "state": ti.state,
             "attempts": [
                 {"attempt": a.attempt, "state": a.state, "started_at": a.started_at,
                  "ended_at": a.ended_at, "error": a.error, "log": a.log_path}
                 for a in attempts if a.task == ti.task and a.map_index == ti.map_index],
             "started_at": ti.started_at, "ended_at": ti.ended_at, "error": ti.error,
             "output": ti.output, "files": ti.files}
            for ti in instances
        ]
        _print_json(data)
        return
    console.print(Text.assemble(f"run {record.run_id} ", styled(effective_state(record)),
                                f"  params {json.dumps(record.params)}"))
    console.print(task_table(instances, dict(counts)))


@main.command()
@click.argument("run_id", metavar="RUN")
@click.argument("task_name", metavar="[TASK]", required=False)
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the run goes on.")
@click.pass_context
def logs(ctx: click.Context, run_id: str, task_name: str | None, follow: bool) -> None:
    """Print the logs of a run's task attempts (all tasks, or one)."""
    printed: dict[str, int] = {}
    with _workspace(ctx) as ws:
        record = ws.store.get_run(run_id)
        known = {ti.task for ti in ws.store.task_instances(run_id)}
        if task_name is not None and task_name not in known:
            raise CadenzaError(
                f"Run {run_id} has no task {task_name!r}; its tasks are {sorted(known)}."
            )
        root = ws.logs / record.pipeline / run_id
        while True:
            files = sorted(
                (p for p in root.glob(f"{task_name or '*'}/*.log")),
                key=lambda p: p.stat().st_mtime,
            ) if root.is_dir() else []
            for path in files:
                text = path.read_text(errors="replace")
                seen = printed.get(str(path))
                if seen is None:
                    console.rule(f"{path.parent.name} · attempt {path.stem}", style="grey50")
                    seen = 0
                if len(text) > seen:
                    click.echo(text[seen:], nl=False)
                printed[str(path)] = len(text)
            if not follow or effective_state(ws.store.get_run(run_id)) != "running":
                break
            time.sleep(0.5)
        if not printed:
            console.print(f"no output was logged for run {run_id}"
                          + (f" task {task_name}" if task_name else ""))


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


# -- scheduling ------------------------------------------------------------------------------


@main.command(name="schedule")
@click.argument("target")
@click.option("--next", "count", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many fire times to show.")
@click.option("--after", metavar="ISO", help="Start from this moment (default: now).")
@_json_option
def schedule_cmd(target: str, count: int, after: str | None, as_json: bool) -> None:
    """Show a pipeline's next fire times with their data intervals and DST notes."""
    from datetime import UTC, datetime

    from cadenza.schedule.cron import describe_dst, next_fire_times

    pipe = load_pipeline(target)
    if pipe.schedule is None:
        raise CadenzaError(
            f"Pipeline {pipe.name!r} has no schedule; give it schedule='...' or every='...'."
        )
    try:
        moment = datetime.fromisoformat(after) if after else datetime.now(UTC)
    except ValueError:
        raise CadenzaError(
            f"--after {after!r} is not an ISO date or time, like 2026-11-01T06:00."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=pipe.schedule.tzinfo)
    intervals = next_fire_times(pipe.schedule, moment, count)
    rows = [{
        "fires_at": iv.local_end.isoformat(), "interval_start": iv.local_start.isoformat(),
        "interval_end": iv.local_end.isoformat(), "logical_date": iv.local_start.isoformat(),
        "dst": describe_dst(pipe.schedule, iv),
    } for iv in intervals]
    if as_json:
        _print_json({"pipeline": pipe.name, "schedule": pipe.schedule.description,
                     "timezone": pipe.schedule.timezone, "next": rows})
        return
    console.print(f"{pipe.name}: {pipe.schedule.description}", highlight=False)
    table = Table(show_edge=False, header_style="bold")
    for column in ("fires at", "data interval", "note"):
        table.add_column(column)
    for iv, row in zip(intervals, rows, strict=True):
        table.add_row(f"{iv.local_end:%Y-%m-%d %H:%M %Z}", str(iv), row["dst"] or "")
    console.print(table)


@main.command()
@click.argument("targets", nargs=-1)
@click.option("--max-runs", type=click.IntRange(1), default=4, show_default=True,
              help="Runs at once, over all pipelines.")
@click.option("--executor", "-e", type=click.Choice(EXECUTORS), default=DEFAULT_EXECUTOR)
@click.option("--workers", "-w", type=int)
@click.option("--tick", type=float, default=1.0, show_default=True, help="Seconds between ticks.")
@click.option("--grace", type=float, default=30.0, show_default=True,
              help="On SIGTERM, seconds running runs get to finish.")
@click.option("--once", is_flag=True, help="Tick once, start what is due, wait for it, exit.")
@click.pass_context
def scheduler(ctx: click.Context, targets: tuple[str, ...], max_runs: int, executor: str,
              workers: int | None, tick: float, grace: float, once: bool) -> None:
    """Run pipelines on their schedules. TARGETS default to the project's list
    (`pipelines = [...]` in cadenza.toml, or [tool.cadenza] in pyproject.toml)."""
    from cadenza._loader import project_targets
    from cadenza.schedule.scheduler import Entry, Scheduler

    with _workspace(ctx) as ws:
        root = ws.root
    entries: list[Entry] = []
    for target in targets or project_targets(root):
        try:
            entries.append(Entry(load_pipeline(target), target))
        except CadenzaError as exc:  # one broken pipeline must not stop the others
            errors.print(f"[bold red]skipping {target}:[/] {exc}", highlight=False)
    if not entries:
        raise CadenzaError("No pipeline could be loaded; nothing to schedule.")
    sched = Scheduler(entries, ctx.obj["home"], max_runs=max_runs, executor=executor,
                      workers=workers)
    stop = threading.Event()
    if once:
        stop.set()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    names = ", ".join(e.pipeline.name for e in entries)
    console.print(f"scheduler {sched.holder}: serving {names}", highlight=False)

    def report(created: list[str], started: list[str]) -> None:
        for run_id in created:
            console.print(f"created {run_id}", highlight=False)
        for run_id in started:
            console.print(f"started {run_id}", highlight=False)

    if once:
        sched.acquire()
        report(sched.tick(), sched.launch())
    left = sched.serve(stop, every=tick, grace=grace if not once else 1e9, on_tick=report)
    if left:
        console.print(f"{len(left)} runs were still running after {grace:g}s; they are "
                      "recorded as interrupted and resume at the next start.")
        sched.close()
        os._exit(0)  # their threads cannot be stopped from outside
    sched.close()


@main.command()
@click.argument("pipeline")
@click.pass_context
def pause(ctx: click.Context, pipeline: str) -> None:
    """Stop scheduling new runs of PIPELINE (runs under way go on)."""
    with _workspace(ctx) as ws:
        ws.store.set_paused(pipeline, True)
    console.print(f"{pipeline} paused", highlight=False)


@main.command()
@click.argument("pipeline")
@click.pass_context
def unpause(ctx: click.Context, pipeline: str) -> None:
    """Schedule PIPELINE again; missed intervals follow its catchup setting."""
    with _workspace(ctx) as ws:
        ws.store.set_paused(pipeline, False)
    console.print(f"{pipeline} unpaused", highlight=False)


@main.command()
@click.argument("target")
@click.option("--start", required=True, help="First day or moment (ISO), in the schedule's zone.")
@click.option("--end", required=True, help="Last day or moment (ISO): intervals ending by it.")
@click.option("--parallel", "-p", type=int, default=1, show_default=True,
              help="Runs at a time.")
@click.option("--rerun-failed", is_flag=True, help="Run failed and cancelled intervals again.")
@click.option("--rerun-all", is_flag=True, help="Run every interval again, even successes.")
@click.option("--executor", "-e", type=click.Choice(EXECUTORS), default=DEFAULT_EXECUTOR)
@click.option("--workers", "-w", type=int)
@_json_option
@click.pass_context
def backfill(ctx: click.Context, target: str, start: str, end: str, parallel: int,
             rerun_failed: bool, rerun_all: bool, executor: str, workers: int | None,
             as_json: bool) -> None:
    """One run per interval between START and END; again, it only runs what is missing."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    from cadenza.schedule.backfill import BackfillItem
    from cadenza.schedule.backfill import backfill as run_backfill

    pipe = load_pipeline(target)
    home = ctx.obj["home"]
    with Bar(TextColumn("backfill {task.description}"), BarColumn(), MofNCompleteColumn(),
             TimeElapsedColumn(), console=console, disable=as_json) as bar:
        job = bar.add_task(pipe.name, total=None)

        def done(item: BackfillItem) -> None:
            bar.advance(job)

        items = run_backfill(pipe, start, end, home=home, parallel=parallel,
                             rerun_failed=rerun_failed, rerun_all=rerun_all, executor=executor,
                             workers=workers, target=target, on_done=done)
    if as_json:
        _print_json([{"interval_start": i.interval.start.isoformat(), "run_id": i.run_id,
                      "action": i.action, "state": i.state} for i in items])
    else:
        table = Table(show_edge=False, header_style="bold")
        for column in ("interval", "run", "action", "state"):
            table.add_column(column)
        for item in items:
            table.add_row(str(item.interval), item.run_id, item.action, styled(item.state))
        console.print(table)
    bad = [i for i in items if i.state not in ("success",)]
    sys.exit(EXIT_FAILED if bad else 0)
