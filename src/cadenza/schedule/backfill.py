"""Backfill: one run per interval of a date range. Running it again creates no duplicates and
skips what succeeded; after a crash it creates only the runs that are missing.

Each run is executed only under a claim (engine/claim.py), so two backfills of one range at
once run each interval once: an interval another runner holds is waited for, and taken over
only if that runner dies or goes silent."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cadenza.engine.claim import Claim
from cadenza.engine.launch import run_pipeline
from cadenza.engine.run import new_run_id
from cadenza.engine.states import RUN_ENDED, RUN_UNFINISHED, RunState
from cadenza.exceptions import CadenzaError, InvalidOptionError, RunClaimedError
from cadenza.params import resolve_params
from cadenza.pipeline import Pipeline, counts
from cadenza.schedule.cron import DateLike, Interval
from cadenza.schedule.scheduler import iso
from cadenza.secrets import sealed_params
from cadenza.store.base import STALE_AFTER, RunRecord
from cadenza.workspace import Location, Workspace

RERUNNABLE = frozenset({RunState.FAILED, RunState.CANCELLED})
UNFINISHED = RUN_UNFINISHED
HELD_POLL = 0.5
"""Seconds between looks at an interval another runner holds."""


@dataclass
class BackfillItem:
    interval: Interval
    run_id: str
    action: str
    """created, resumed (unfinished before), rerun (--rerun-failed/--rerun-all), skipped, or
    elsewhere (another runner had it, and this backfill waited for it to end)."""
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
    resolved = sealed_params(resolve_params(pipe.name, pipe.params, params,
                                            from_text=params_from_text), pipe.secret_params,
                             params or {}, None if workspace.in_memory else workspace.home)
    now = datetime.now(UTC).timestamp()
    fresh = [
        RunRecord(new_run_id(pipe.name, iv.start), pipe.name, RunState.QUEUED.value, resolved,
                  now + i * 1e-6, target=target, logical_date=iso(iv.start),
                  interval_start=iso(iv.start), interval_end=iso(iv.end))
        for i, iv in enumerate(intervals) if iso(iv.start) not in existing
    ]
    created = set(store.create_runs(fresh))
    if len(created) < len(fresh):  # another process made those meanwhile: use its runs
        existing = {r.logical_date: r for r in store.list_runs(pipe.name, limit=1 << 30)
                    if r.logical_date is not None}
    items: list[BackfillItem] = []
    for run in fresh:
        if run.run_id in created:
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
    pipe: Pipeline, start: DateLike, end: DateLike, *,
    home: str | Path | Location | None = None,
    parallel: int = 1, rerun_failed: bool = False, rerun_all: bool = False,
    executor: str = "threads", workers: int | None = None, target: str = "",
    on_done: Callable[[BackfillItem], None] | None = None,
    params: Mapping[str, Any] | None = None, params_from_text: bool = False,
    stale_after: float = STALE_AFTER,
) -> list[BackfillItem]:
    """Run every interval of ``pipe`` between ``start`` and ``end`` that needs it, ``parallel``
    runs at a time; return one item per interval, in order. An interval another runner holds
    is waited for (``stale_after``: how long that runner may go unseen before its run is taken
    over)."""
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
                claim = _claim(ws, item, stale_after)
                if claim is not None:
                    result = run_pipeline(
                        pipe, workspace=ws, resume=item.run_id, executor=executor,
                        workers=workers, reset=rerun_all and item.action == "rerun",
                        force=rerun_all, claim=claim, stale_after=stale_after,
                    )
                    item.state = result.state
            finally:
                ws.close()
        if on_done is not None:
            on_done(item)
        return item

    with ThreadPoolExecutor(parallel, thread_name_prefix="cadenza-backfill") as pool:
        return list(pool.map(execute, items))


def _claim(ws: Workspace, item: BackfillItem, stale_after: float) -> Claim | None:
    """Claim the item's run, waiting while another runner holds it. None: it needs no run any
    more (another runner ended it meanwhile; ``item`` says how)."""
    store = ws.store
    while True:
        try:
            claim = Claim.take(store, item.run_id, stale_after)
        except RunClaimedError:
            item.action = "elsewhere"
            time.sleep(HELD_POLL)
            continue
        run = store.get_run(item.run_id)
        if item.action != "rerun" and run.state in RUN_ENDED:
            claim.stop(store)
            item.state = run.state
            return None
        return claim
