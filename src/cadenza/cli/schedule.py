"""`cadenza schedule`, `scheduler`, `pause`, `unpause` and `backfill`."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click
from rich.table import Table

from cadenza._display import (
    styled,
)
from cadenza._loader import load_pipeline
from cadenza._words import plural
from cadenza.cli._base import (
    DEFAULT_EXECUTOR,
    EXIT_FAILED,
    _json_option,
    _listing,
    _location,
    _params_option,
    _print_json,
    _workspace,
    console,
    did_you_mean,
    error_line,
    errors,
    main,
)
from cadenza.cli.run import lineage_transport
from cadenza.engine.claim import stale_after_from
from cadenza.exceptions import CadenzaError
from cadenza.executors import EXECUTORS
from cadenza.metrics import Metrics
from cadenza.schedule.scheduler import Entry, Scheduler, SchedulerBusyError


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


def load_entries(ctx: click.Context, targets: tuple[str, ...]
                 ) -> tuple[list[Entry], dict[str, str]]:
    """The pipelines of ``targets`` (default: the project's list), and why any failed to load:
    one broken pipeline must not stop the others."""
    from cadenza._loader import project_targets
    from cadenza.workspace import find_home

    entries: list[Entry] = []
    failed: dict[str, str] = {}
    for target in targets or project_targets(find_home(ctx.obj["home"]).parent):
        try:
            entries.append(Entry(load_pipeline(target), target))
        except CadenzaError as exc:
            failed[target] = str(exc)
    return entries, failed


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
@click.option("--lease", type=float, metavar="SECONDS",
              help="How long the store's scheduler lease lasts unrenewed, on the store's clock: "
                   "a successor takes over that long after this scheduler stops or is paused "
                   "[default: CADENZA_SCHEDULER_LEASE, else 30].")
@click.option("--standby", is_flag=True,
              help="While another scheduler serves the store, wait and take over once its "
                   "lease runs out (instead of exiting 2).")
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics on 127.0.0.1:PORT.")
@click.option("--lineage-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Append OpenLineage events here.")
@click.option("--lineage-url", help="POST OpenLineage events to this URL.")
@click.pass_context
def scheduler(ctx: click.Context, targets: tuple[str, ...], max_runs: int, executor: str,
              workers: int | None, tick: float, grace: float, once: bool, lease: float | None,
              standby: bool,
              metrics_port: int | None, lineage_file: Path | None,
              lineage_url: str | None) -> None:
    """Run pipelines on their schedules. TARGETS default to the project's list
    (`pipelines = [...]` in cadenza.toml, or [tool.cadenza] in pyproject.toml)."""
    from cadenza.schedule.scheduler import lease_from

    lease_seconds = lease_from(os.environ, lease)
    entries, failed = load_entries(ctx, targets)
    for target, why in failed.items():
        errors.print(error_line(f"skipping {target}:", why))
    if not entries:
        raise CadenzaError("No pipeline could be loaded; nothing to schedule.")
    metrics = Metrics() if metrics_port is not None else None
    server = metrics.serve(metrics_port) if metrics is not None and metrics_port is not None \
        else None
    if server is not None:
        console.print(f"metrics at {server.url}", highlight=False)
    sched = Scheduler(entries, _location(ctx), max_runs=max_runs, executor=executor,
                      workers=workers, metrics=metrics,
                      lineage=lineage_transport(lineage_file, lineage_url),
                      stale_after=stale_after_from(os.environ), lease=lease_seconds,
                      on_error=lambda line: errors.print(error_line("error:", line),
                                                         soft_wrap=True))
    stop = threading.Event()
    if once:
        stop.set()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    names = ", ".join(e.pipeline.name for e in entries)

    def report(created: list[str], started: list[str]) -> None:
        for run_id in created:
            console.print(f"created {run_id}", highlight=False)
        for run_id in started:
            console.print(f"started {run_id}", highlight=False)

    try:
        if standby and not once and not _stand_by(sched, stop, tick):
            sched.close()
            return  # stopped while standing by: nothing was served
        console.print(f"scheduler {sched.holder}: serving {names} (store "
                      f"{sched.workspace.where})", soft_wrap=True)
        if once:
            sched.acquire()
            report(sched.tick(), sched.launch())
        left = sched.serve(stop, every=tick, grace=grace if not once else 1e9, on_tick=report)
    finally:
        if server is not None:
            server.shutdown()
    if left:
        console.print(f"{plural(len(left), 'run')} still running after {grace:g}s: "
                      "recorded as interrupted, to resume at the next start.")
        sched.close()
        os._exit(0)  # their threads cannot be stopped from outside
    sched.close()


def _stand_by(sched: Scheduler, stop: threading.Event, tick: float) -> bool:
    """Wait until ``sched`` holds the store's lease (True) or ``stop`` is set (False)."""
    said = False
    while True:
        try:
            sched.acquire()
            return True
        except SchedulerBusyError as busy:
            if not said:
                console.print(f"standing by: {busy.holder} serves this store; taking over "
                              f"once its {sched.lease:g}s lease runs out", highlight=False)
                said = True
        if stop.wait(min(max(tick, 0.1), sched.lease / 3)):
            return False


@main.command()
@click.argument("pipeline")
@click.pass_context
def pause(ctx: click.Context, pipeline: str) -> None:
    """Stop scheduling new runs of PIPELINE (runs under way go on)."""
    _set_paused(ctx, pipeline, True)


@main.command()
@click.argument("pipeline")
@click.pass_context
def unpause(ctx: click.Context, pipeline: str) -> None:
    """Schedule PIPELINE again; missed intervals follow its catchup setting."""
    _set_paused(ctx, pipeline, False)


def _set_paused(ctx: click.Context, pipeline: str, paused: bool) -> None:
    found = _location(ctx)
    known: set[str] = set()
    if found.exists:
        with _workspace(ctx) as ws:
            known = set(ws.store.pipelines()) | ws.store.paused()
    if pipeline not in known:  # a pipeline the project lists may be paused before it ever ran
        entries, _ = _project_entries(ctx)
        known |= {e.pipeline.name for e in entries}
    if pipeline not in known:
        where = (f"has no runs in the store at {str(found.home)!r}" if found.exists else
                 f"has no store (none was found {found.searched()})")
        raise CadenzaError(
            f"No pipeline is named {pipeline!r}: the project lists none of that name, and it "
            f"{where}.{did_you_mean(pipeline, known)} Known pipelines: {_listing(known)}."
        )
    with _workspace(ctx, create=True) as ws:
        ws.store.set_paused(pipeline, paused)
    console.print(f"{pipeline} {'paused' if paused else 'unpaused'}", highlight=False)


def _project_entries(ctx: click.Context) -> tuple[list[Entry], dict[str, str]]:
    """The project's listed pipelines; none if it lists none."""
    try:
        return load_entries(ctx, ())
    except CadenzaError:
        return [], {}


@main.command()
@click.argument("target")
@click.option("--start", required=True, help="First day or moment (ISO), in the schedule's zone.")
@click.option("--end", required=True, help="Last day or moment (ISO): intervals ending by it.")
@_params_option
@click.option("--parallel", "-j", type=int, default=1, show_default=True,
              help="Runs at a time.")
@click.option("--rerun-failed", is_flag=True, help="Run failed and cancelled intervals again.")
@click.option("--rerun-all", is_flag=True, help="Run every interval again, even successes.")
@click.option("--executor", "-e", type=click.Choice(EXECUTORS), default=DEFAULT_EXECUTOR)
@click.option("--workers", "-w", type=int)
@_json_option
@click.pass_context
def backfill(ctx: click.Context, target: str, start: str, end: str, params: tuple[str, ...],
             parallel: int, rerun_failed: bool, rerun_all: bool, executor: str,
             workers: int | None, as_json: bool) -> None:
    """One run per interval between START and END; again, it only runs what is missing.
    --param values are given to the runs it creates (runs that exist keep theirs)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    from cadenza.params import parse_assignments
    from cadenza.schedule.backfill import BackfillItem
    from cadenza.schedule.backfill import backfill as run_backfill

    pipe = load_pipeline(target)
    values = parse_assignments(params)
    with _workspace(ctx, create=True) as ws:  # made (and said where) before the runs start
        home = ws.location or ws.home  # the store given by --db too
    with Bar(TextColumn("backfill {task.description}"), BarColumn(), MofNCompleteColumn(),
             TimeElapsedColumn(), console=console, disable=as_json,
             redirect_stdout=False, redirect_stderr=False) as bar:  # see _display.Progress
        job = bar.add_task(pipe.name, total=None)

        def done(item: BackfillItem) -> None:
            bar.advance(job)

        items = run_backfill(pipe, start, end, home=home, parallel=parallel,
                             rerun_failed=rerun_failed, rerun_all=rerun_all, executor=executor,
                             workers=workers, target=target, on_done=done, params=values,
                             params_from_text=True, stale_after=stale_after_from(os.environ))
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
