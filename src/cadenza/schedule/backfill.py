"""Backfill: one run per interval of a date range. Running it again creates no duplicates and
skips what succeeded; after a crash it creates only the runs that are missing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cadenza.engine.launch import run_pipeline
from cadenza.engine.run import new_run_id
from cadenza.exceptions import CadenzaError, InvalidOptionError
from cadenza.params import resolve_params
from cadenza.pipeline import Pipeline, counts
from cadenza.schedule.cron import DateLike, Interval
from cadenza.schedule.scheduler import iso
from cadenza.secrets import masked_params
from cadenza.store.base import RunRecord
from cadenza.workspace import Workspace

RERUNNABLE = frozenset({"failed", "cancelled"})
UNFINISHED = frozenset({"queued", "interrupted", "running", "waiting"})


@dataclass
class BackfillItem:
    interval: Interval
    run_id: str
    action: str
    """created, resumed (unfinished before), rerun (--rerun-failed/--rerun-all), or skipped."""
    state: str
    """The run's state once the backfill is done."""


def plan_backfill(
    pipe: Pipeline, workspace: Workspace, start: DateLike, end: DateLike, *,
    rerun_failed: bool = False, rerun_all: bool = False, target: str = "",
    params: Mapping[str, Any] | None = None, params_from_text: bool = False,
) -> list[BackfillItem]:
    """Create the runs the range is missing, with ``params`` (runs that exist keep theirs); say
    for each interval what will happen."""
    schedule = pipe.schedule
    if schedule is None:
        raise CadenzaError(
            f"Pipeline {pipe.name!r} has no schedule, so it has no intervals to backfill. "
            "Give it schedule='...' or every='...'."
        )
    intervals = schedule.intervals_between(start, end)
    first, last = schedule.bounds(start, end)
    if last <= first:
        raise InvalidOptionError(
            f"Backfill end {end!r} is not after its start {start!r}; swap them.",
            option="end", value=end, pipeline=pipe.name,
        )
    if not intervals:
        raise CadenzaError(
            f"No whole interval of {schedule.description} fits between {start!r} and "
            f"{end!r}; widen the range."
        )
    store = workspace.store
    existing = {r.logical_date: r for r in store.list_runs(pipe.name, limit=1 << 30)
                if r.logical_date is not None}
    resolved = masked_params(resolve_params(pipe.name, pipe.params, params,
                                            from_text=params_from_text), pipe.secret_params)
    now = datetime.now(UTC).timestamp()
    fresh = [
        RunRecord(new_run_id(pipe.name, iv.start), pipe.name, "queued", resolved,
                  now + i * 1e-6, target=target, logical_date=iso(iv.start),
                  interval_start=iso(iv.start), interval_end=iso(iv.end))
        for i, iv in enumerate(intervals) if iso(iv.start) not in existing
    ]
    created = set(store.create_runs(fresh))
    items: list[BackfillItem] = []
    for run in fresh:
        existing.setdefault(run.logical_date or "", run)
    for interval in intervals:
        run = existing[iso(interval.start)]
        if run.run_id in created:
            action = "created"
        elif run.state in UNFINISHED:
            action = "resumed"
        elif rerun_all or (rerun_failed and run.state in RERUNNABLE):
            action = "rerun"
        else:
            action = "skipped"
        items.append(BackfillItem(interval, run.run_id, action, run.state))
    return items


def backfill(
    pipe: Pipeline, start: DateLike, end: DateLike, *, home: str | Path | None = None,
    parallel: int = 1, rerun_failed: bool = False, rerun_all: bool = False,
    executor: str = "threads", workers: int | None = None, target: str = "",
    on_done: Callable[[BackfillItem], None] | None = None,
    params: Mapping[str, Any] | None = None, params_from_text: bool = False,
) -> list[BackfillItem]:
    """Run every interval of ``pipe`` between ``start`` and ``end`` that needs it, ``parallel``
    runs at a time; return one item per interval, in order."""
    if not counts(parallel):
        raise InvalidOptionError(
            f"--parallel {parallel!r} is invalid: give 1 or more runs at a time.",
            option="parallel", value=parallel, pipeline=pipe.name,
        )
    workspace = Workspace.open(home)
    try:
        items = plan_backfill(pipe, workspace, start, end, rerun_failed=rerun_failed,
                              rerun_all=rerun_all, target=target, params=params,
                              params_from_text=params_from_text)
    finally:
        workspace.close()

    def execute(item: BackfillItem) -> BackfillItem:
        if item.action != "skipped":
            ws = Workspace.open(home)
            try:
                result = run_pipeline(
                    pipe, workspace=ws, resume=item.run_id, executor=executor,
                    workers=workers, reset=rerun_all and item.action == "rerun",
                    force=rerun_all,
                )
                item.state = result.state
            finally:
                ws.close()
        if on_done is not None:
            on_done(item)
        return item

    with ThreadPoolExecutor(parallel, thread_name_prefix="cadenza-backfill") as pool:
        return list(pool.map(execute, items))
