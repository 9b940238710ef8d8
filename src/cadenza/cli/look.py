"""`cadenza plan`, `show`, `runs`, `status` and `logs`: look without running."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from cadenza._display import (
    COLORS,
    check_lines,
    duration,
    problems,
    rows_of_records,
    styled,
    task_table,
)
from cadenza._loader import load_pipeline
from cadenza._words import attempt_label, plural
from cadenza.cli._base import (
    _json_option,
    _params_option,
    _print_json,
    _selection_options,
    _workspace,
    check_pipeline,
    console,
    main,
    resolve_run,
)
from cadenza.engine.claim import stale_after_from
from cadenza.engine.launch import select
from cadenza.engine.logs import StoredLogs
from cadenza.engine.plan import plan_pipeline
from cadenza.exceptions import CadenzaError
from cadenza.params import as_param, parse_assignments, resolve_params
from cadenza.report import critical_path, dag_of, dag_order
from cadenza.secrets import mask_data
from cadenza.show import FORMATS, render
from cadenza.store.base import Approval, AttemptRecord, RunRecord, effective_state


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
    selected = select(pipe, only or None, from_ or None)
    with _workspace(ctx, missing_ok=True) as ws:
        steps = plan_pipeline(pipe, ws, values, force=force, selected=selected)
    shown = {k: ("***" if as_param(pipe.params[k]).secret else v) for k, v in values.items()}
    if as_json:
        _print_json({"pipeline": pipe.name, "params": shown, "tasks": [
            {"task": s.task, "runs": s.runs, "reason": s.reason, "assumes": list(s.assumes),
             "checks": [f"{c.name} ({c.severity})" for c in pipe.checks.get(s.task, ())]}
            for s in steps]})
        return
    if values:
        console.print(f"params: {json.dumps(shown, default=str)}", highlight=False)
    table = Table(show_edge=False, header_style="bold")
    for column in ("task", "will", "why", "checks"):
        table.add_column(column)
    for step in steps:
        will = Text("run", style="yellow") if step.runs else Text("skip", style="cyan")
        declared = ", ".join(
            c.name + (" (warn)" if c.severity == "warn" else "")
            for c in pipe.checks.get(step.task, ())
        )
        table.add_row(step.task, will, step.reason, declared)
    console.print(table)
    count = sum(s.runs for s in steps)
    console.print(f"{count} of {plural(len(steps), 'task')} would run.", highlight=False)


@main.command()
@click.argument("target")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default="text",
              show_default=True)
def show(target: str, fmt: str) -> None:
    """Print the DAG: text, Mermaid, JSON, or a Markdown orchestration plan."""
    text = render(load_pipeline(target), fmt)
    click.echo(text, nl=not text.endswith("\n"))


@main.command()
@click.option("--pipeline", help="Only this pipeline's runs.")
@click.option("--limit", "-n", type=int, default=20, show_default=True)
@_json_option
@click.pass_context
def runs(ctx: click.Context, pipeline: str | None, limit: int, as_json: bool) -> None:
    """List recent runs, newest first."""
    with _workspace(ctx) as ws:
        check_pipeline(ws, pipeline)
        records = ws.store.list_runs(pipeline, limit)
        now = ws.store.clock()  # runs' owners are judged on the store's clock, read once
    if as_json:
        _print_json([_run_json(r, now) for r in records])
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("run", "pipeline", "state", "started", "duration"):
        table.add_column(column, no_wrap=True)
    for r in records:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at or r.created_at))
        table.add_row(r.run_id, r.pipeline, styled(_state(r, now)), started,
                      duration(r.started_at, r.ended_at))
    console.print(table if records else "no runs yet")


def _state(run: RunRecord, now: float) -> str:
    """``run``'s state, ``interrupted`` if its owner went unseen for CADENZA_STALE_AFTER by
    ``now``, the store's clock (``store.clock()``, never this machine's)."""
    return effective_state(run, now, stale_after_from(os.environ))


def _run_json(r: RunRecord, now: float) -> dict[str, Any]:
    return {
        "run_id": r.run_id, "pipeline": r.pipeline, "state": _state(r, now),
        "params": mask_data(r.params), "created_at": r.created_at, "started_at": r.started_at,
        "ended_at": r.ended_at, "target": r.target,
    }


@main.command()
@click.argument("run_id", metavar="RUN")
@_json_option
@click.pass_context
def status(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run's tasks: state, attempts, duration, error, data checks, gate decisions."""
    with _workspace(ctx) as ws:
        record = ws.store.get_run(run_id := resolve_run(ws, run_id))
        instances = ws.store.task_instances(run_id)
        attempts = ws.store.attempts(run_id)
        decisions = {a.task: a for a in ws.store.approvals(run_id)}
        upstream = dag_of(ws.store.events(run_id))
        path = critical_path(instances, upstream)
        now = ws.store.clock()
    # In DAG order (layer by layer, as declared within a layer), whatever order they ran in.
    place = {task: i for i, task in enumerate(dag_order(upstream))}

    def rank(task: str) -> tuple[int, str]:
        return place.get(task, len(place)), task

    instances = sorted(instances, key=lambda ti: (*rank(ti.task), ti.map_index))
    if as_json:
        data = _run_json(record, now)
        data["critical_path"] = path
        data["tasks"] = [
            {"task": ti.task, "map_index": ti.map_index, "state": ti.state,
             "attempts": [
                 {"attempt": a.attempt, "state": a.state, "started_at": a.started_at,
                  "ended_at": a.ended_at, "error": a.error, "log": a.log_path,
                  "checks": a.checks}
                 for a in attempts if a.task == ti.task and a.map_index == ti.map_index],
             "started_at": ti.started_at, "ended_at": ti.ended_at, "error": ti.error,
             "output": ti.output, "files": ti.files,
             "decision": _decision_json(decisions.get(ti.task)) if ti.map_index < 0 else None}
            for ti in instances
        ]
        _print_json(data)
        return
    console.print(Text.assemble(f"run {record.run_id} ", styled(_state(record, now)),
                                f"  params {json.dumps(mask_data(record.params))}"))
    rows = sorted(rows_of_records(instances, attempts), key=lambda row: rank(row.task))
    console.print(task_table(rows, console.width))
    for line in problems(rows):
        console.print(line, soft_wrap=True)
    if decisions:
        console.print(Text("gates:", style="bold"))
        for gate, decision in sorted(decisions.items()):
            word = "approved" if decision.approved else "rejected"
            console.print(Text.assemble(
                f"  {gate} ", (word, "green" if decision.approved else "red"),
                f" by {decision.by}", f": {decision.reason}" if decision.reason else "",
                time.strftime(" (%Y-%m-%d %H:%M:%S)", time.localtime(decision.at))),
                soft_wrap=True)
    if path:
        times = {ti.task: ti for ti in instances if ti.map_index < 0}
        first, last = times[path[0]], times[path[-1]]
        console.print(f"critical path: {' → '.join(path)} "
                      f"({duration(first.started_at, last.ended_at)})", highlight=False)


def _decision_json(decision: Approval | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {"approved": decision.approved, "by": decision.by, "at": decision.at,
            "reason": decision.reason}


@main.command()
@click.argument("run_id", metavar="RUN")
@click.argument("task_name", metavar="[TASK]", required=False)
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the run goes on.")
@click.pass_context
def logs(ctx: click.Context, run_id: str, task_name: str | None, follow: bool) -> None:
    """Print the logs of a run's task attempts (all tasks, or one), and each attempt's data
    checks and error when its log does not hold them."""
    shown = _Shown()
    with _workspace(ctx) as ws:
        record = ws.store.get_run(run_id := resolve_run(ws, run_id))
        instances = ws.store.task_instances(run_id, mapped=False)
        known = {ti.task for ti in instances}
        if task_name is not None and task_name not in known:
            raise CadenzaError(
                f"Run {run_id} has no task {task_name!r}; its tasks are {sorted(known)}."
            )
        root = ws.logs / record.pipeline / run_id
        stored = StoredLogs(ws.store, ws.artifacts, run_id)  # attempts run on other hosts
        while True:
            recorded = set()
            for attempt in ws.store.attempts(run_id, task_name):
                stem = (f"{attempt.map_index}." if attempt.map_index >= 0 else "") + str(
                    attempt.attempt)
                path = root / attempt.task / f"{stem}.log"
                recorded.add(path)
                text = _read(path)
                if text is None and attempt.log_path and attempt.state != "running":
                    data = stored.data(attempt.task, attempt.map_index, attempt.attempt)
                    text = None if data is None else data.decode("utf-8", errors="replace")
                label = f"{attempt.task} · {attempt_label(attempt.map_index, attempt.attempt)}"
                shown.log(path, label, text)
                if attempt.state != "running":
                    shown.verdict(attempt, text or "", label)
            # an attempt that is running may not be recorded yet: its log is shown all the same
            files = sorted(
                (p for p in root.glob(f"{task_name or '*'}/*.log") if p not in recorded),
                key=lambda p: p.stat().st_mtime,
            ) if root.is_dir() else []
            for path in files:
                index, dot, number = path.stem.rpartition(".")  # 3.1: item 3, attempt 1
                shown.log(path, f"{path.parent.name} · {f'item {index} · ' if dot else ''}"
                          f"attempt {number}", _read(path))  # a file name: not parsed further
            if not follow or _state(ws.store.get_run(run_id), ws.store.clock()) != "running":
                break
            time.sleep(0.5)
        if not shown.any:
            console.print(f"no output was logged for run {run_id}"
                          + (f" task {task_name}" if task_name else ""))
            for ti in instances:  # a task that ran no code (a gate) may still have a reason
                if ti.error and task_name in (None, ti.task):
                    console.print(Text.assemble(f"{ti.task} ", styled(ti.state), f": {ti.error}"),
                                  soft_wrap=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return None


class _Shown:
    """What `cadenza logs` has printed so far: of each log, how much; of each attempt, whether
    its verdict."""

    def __init__(self) -> None:
        self.printed: dict[Path, int] = {}
        self.headed: set[str] = set()
        self.told: set[str] = set()

    @property
    def any(self) -> bool:
        return bool(self.headed)

    def _head(self, label: str) -> None:
        if label not in self.headed:
            self.headed.add(label)
            console.rule(Text(label), style="grey50")

    def log(self, path: Path, label: str, text: str | None) -> None:
        """Print what ``text`` (the log at ``path``, or its stored copy) holds beyond what was
        printed of it before."""
        if text is None:
            return
        seen = self.printed.get(path, 0)
        if len(text) > seen or label not in self.headed:
            self._head(label)
            click.echo(text[seen:], nl=False)
        self.printed[path] = len(text)

    def verdict(self, attempt: AttemptRecord, logged: str, label: str) -> None:
        """The attempt's data checks, and its error if its log (``logged``) does not say it
        already."""
        if label in self.told:
            return
        self.told.add(label)
        lines = check_lines(attempt.checks)
        blocking = any(not c["passed"] and c["severity"] == "error" for c in attempt.checks)
        error = (attempt.error or "").strip()
        if error and not blocking and error.splitlines()[0] not in logged:
            lines.append(Text.assemble((f"{attempt.state}: ", COLORS.get(attempt.state, "")),
                                       error))
        if lines:
            self._head(label)
            for line in lines:
                console.print(line, soft_wrap=True)
