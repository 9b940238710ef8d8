"""The scheduler: create each due run once, start runs with bounded concurrency, resume what was
interrupted, and stop cleanly.

Exactly once per interval is the store's job, not timing's: a unique index on (pipeline,
logical date) refuses a second run for an interval. A tick that runs twice, a clock stepped
backwards, or a scheduler restarted after a kill -9 between creating a run and starting it all
find the run already there. One scheduler serves a store at a time (a lease in the store,
renewed every tick and judged on the store's clock): a second one refuses to start, and takes
over once the lease has run out unrenewed. Even so, a run is executed only under a claim
(engine/claim.py): a run another runner holds is left to it, and a paused scheduler whose
lease and runs were taken over stops, writing nothing more.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cadenza._process import alive
from cadenza.engine.gates import counts
from cadenza.engine.hooks import Hooks
from cadenza.engine.launch import run_pipeline
from cadenza.engine.run import new_run_id
from cadenza.engine.states import RunState, move_run
from cadenza.exceptions import CadenzaError, ClaimLostError, RunClaimedError, StoreError
from cadenza.lineage import OpenLineageHooks, Transport
from cadenza.metrics import Metrics
from cadenza.params import resolve_params
from cadenza.pipeline import Pipeline
from cadenza.schedule.cron import Interval
from cadenza.schedule.sensors import cursor_key
from cadenza.secrets import mask, masked_params, sealed_params
from cadenza.store.base import STALE_AFTER, Batch, Event, RunRecord, effective_state
from cadenza.workspace import Location, Workspace

LEASE = "scheduler"
LEASE_SECONDS = 30.0
"""How long the scheduler's lease lasts unrenewed, on the store's clock: a successor waits
that long after a scheduler stopped (or was paused) before it takes over. Renewed every tick,
so it must be longer than the tick. ``--lease`` or CADENZA_SCHEDULER_LEASE set it."""
MAX_CATCHUP = 10_000
"""Intervals one pipeline may create in one tick; the rest come on the next ticks."""


class SchedulerBusyError(CadenzaError):
    def __init__(self, holder: str, lease: float = LEASE_SECONDS):
        super().__init__(
            f"Another scheduler ({holder}) is serving this store. Stop it first, or wait "
            f"{lease:g}s after it died for its lease to run out."
        )
        self.holder = holder


class SchedulerLeaseLostError(SchedulerBusyError):
    """This scheduler went unseen past its lease (stopped, or stalled) and ``holder`` took
    over: it stopped creating and starting runs, and its runs taken over wrote nothing more."""

    def __init__(self, me: str, holder: str, lease: float):
        CadenzaError.__init__(
            self,
            f"Scheduler {me} lost the store's lease to {holder}: it went unseen for more than "
            f"its {lease:g}s lease (stopped, or stalled), so it stopped serving and wrote "
            "nothing more. Leave the other one serving, or give a longer --lease "
            "(CADENZA_SCHEDULER_LEASE) if this one is paused on purpose.",
        )
        self.holder = holder


def lease_from(environ: Mapping[str, str], given: float | None = None) -> float:
    """The lease in seconds: ``given`` (``--lease``), else CADENZA_SCHEDULER_LEASE, else
    LEASE_SECONDS. Read once, by the CLI."""
    text = str(given) if given is not None else environ.get("CADENZA_SCHEDULER_LEASE", "")
    text = text.strip()
    if not text:
        return LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        where = f"--lease {given:g}" if given is not None else \
            f"CADENZA_SCHEDULER_LEASE={text!r}"
        raise CadenzaError(
            f"{where} is not a number of seconds above 0; give how long the "
            f"scheduler's lease lasts unrenewed (default {LEASE_SECONDS:g})."
        )
    return value


@dataclass(frozen=True)
class Entry:
    """A pipeline the scheduler serves, and the target it was loaded from (for resumes)."""

    pipeline: Pipeline
    target: str


def iso(moment: datetime) -> str:
    """Run records keep interval bounds as ISO text in UTC: equal instants, equal text."""
    return moment.astimezone(UTC).isoformat()


def _dead_here(holder: str) -> bool:
    """True if ``holder`` names a process on this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not alive(int(pid))


def due_intervals(pipe: Pipeline, latest_end: str | None, now: datetime) -> list[Interval]:
    """The intervals of ``pipe`` that have ended by ``now`` and have no run yet.

    After the latest scheduled run, every interval that ended since then (with catchup), or
    only the newest (without). With no run yet: every interval from the schedule's start
    (catchup and a start date), else only the newest finished interval.
    """
    schedule = pipe.schedule
    if schedule is None:
        return []
    if latest_end is None:
        if pipe.catchup and schedule.start is not None:
            found = schedule.intervals_between(schedule.start, now)[:MAX_CATCHUP]
        else:
            current = schedule.next_after(now)
            edge = current.start if current is not None else now
            previous = schedule.next_after(edge - timedelta(microseconds=1))
            found = [previous] if previous is not None and previous.end <= now else []
        return found if pipe.catchup else found[-1:]
    found = []
    moment = datetime.fromisoformat(latest_end)
    while len(found) < MAX_CATCHUP:
        interval = schedule.next_after(moment)
        if interval is None or interval.end > now:
            break
        found.append(interval)
        moment = interval.end
    return found if pipe.catchup else found[-1:]


class Scheduler:
    """Serves ``entries`` from the workspace at ``home``; ``clock`` tells the time (tests fake
    it)."""

    def __init__(
        self, entries: Iterable[Entry], home: str | Path | Location | None = None, *,
        max_runs: int = 4, executor: str = "threads", workers: int | None = None,
        clock: Callable[[], float] = time.time, metrics: Metrics | None = None,
        lineage: Transport | None = None, stale_after: float = STALE_AFTER,
        lease: float = LEASE_SECONDS, on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.entries = {e.pipeline.name: e for e in entries}
        self.workspace = Workspace.open(home)
        self.home = self.workspace.home
        self.max_runs, self.executor, self.workers, self.clock = (
            max_runs, executor, workers, clock
        )
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.metrics, self.lineage = metrics, lineage
        """Prometheus metrics to update (runs, tasks, tick time) and where lineage goes."""
        self.stale_after = stale_after
        """Seconds a runner may go unseen before its run counts as interrupted (resumable)."""
        self.lease = lease
        """Seconds the store's scheduler lease lasts unrenewed (LEASE_SECONDS)."""
        self.lost = False
        """The lease was taken over while this scheduler served: it writes nothing more."""
        self.on_error = on_error
        """Called with each error's one line (the CLI prints it), besides ``errors``."""
        self._failing = False
        """The last tick failed on the store: the next failures are not said again."""
        self.active: dict[str, tuple[str, threading.Thread]] = {}
        """Runs this scheduler started: run id -> (pipeline, thread)."""
        self.cancel = threading.Event()
        self.errors: list[str] = []
        """Messages of what went wrong while serving; each is also an event in the store."""
        self.latest: dict[str, str] | None = None
        """Each pipeline's latest scheduled interval end, read once, then kept up to date:
        a run another process made meanwhile is refused by the store's unique index."""
        self.next_check: dict[tuple[str, str], float] = {}
        self._params: dict[str, dict[str, Any]] = {}
        """When each (pipeline, sensor) is checked next, by the scheduler's clock."""

    # -- one tick -----------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> list[str]:
        """Create the runs that are due at ``now``; return their ids."""
        moment = datetime.fromtimestamp(self.clock() if now is None else now, UTC)
        store = self.workspace.store
        paused = store.paused()
        if self.latest is None:
            self.latest = store.latest_intervals()
        latest = self.latest
        runs: list[RunRecord] = []
        created_at = moment.timestamp()
        for name, entry in self.entries.items():
            pipe = entry.pipeline
            if pipe.schedule is None or name in paused:
                continue
            try:
                due = due_intervals(pipe, latest.get(name), moment)
                params = self._defaults(pipe)
            except Exception as exc:  # one pipeline's trouble must not stop the others
                self._error(name, f"cannot work out its due runs: {exc}")
                continue
            for interval in due:
                created_at += 1e-6  # keeps creation order = interval order
                start, end = iso(interval.start), iso(interval.end)
                runs.append(RunRecord(
                    new_run_id(name, interval.start), name, RunState.QUEUED.value, params,
                    created_at,
                    target=entry.target, logical_date=start, interval_start=start,
                    interval_end=end,
                ))
            if due:
                latest[name] = iso(due[-1].end)
        created = store.create_runs(runs) if runs else []
        return created + self._check_sensors(moment.timestamp(), paused)

    def _defaults(self, pipe: Pipeline) -> dict[str, Any]:
        """A scheduled run's params as stored: the pipeline's defaults, checked once, secret
        ones as ``***`` (the runner takes their defaults again)."""
        found = self._params.get(pipe.name)
        if found is None:
            found = self._params[pipe.name] = masked_params(
                resolve_params(pipe.name, pipe.params, None), pipe.secret_params)
        return found

    def _check_sensors(self, now: float, paused: set[str]) -> list[str]:
        store = self.workspace.store
        created: list[str] = []
        for name, entry in self.entries.items():
            pipe = entry.pipeline
            if name in paused:
                continue
            for sensor in pipe.sensors:
                key = (name, sensor.name)
                if self.next_check.get(key, now) > now:
                    continue
                self.next_check[key] = now + sensor.every
                try:
                    result = sensor.check(store.get_cursor(cursor_key(name, sensor)),
                                          self.workspace)
                    if result is None:
                        continue
                    given = {k: v for k, v in result.params.items() if k in pipe.params}
                    params = sealed_params(resolve_params(name, pipe.params, given),
                                           pipe.secret_params, given,
                                           None if self.workspace.in_memory else self.home)
                except Exception as exc:  # a sensor's failure is its pipeline's alone
                    self._error(name, f"sensor {sensor.name!r} raised {type(exc).__name__}: "
                                      f"{exc}", kind="sensor_error", sensor=sensor.name)
                    continue
                if result.run:
                    created += store.create_runs([RunRecord(
                        sensor.run_id(name, result), name, RunState.QUEUED.value, params, now,
                        target=entry.target,
                    )])
                if result.cursor is not None:
                    store.set_cursor(cursor_key(name, sensor), result.cursor)
        return created

    def launch(self) -> list[str]:
        """Start queued, interrupted and newly approved runs, within the limits; return ids.

        ``max_active_runs`` counts every run of the pipeline that runs now, whoever runs it
        (this scheduler, `cadenza run`, a runner on another host), as the store says; ``max_runs``
        counts this scheduler's own."""
        self.active = {rid: pt for rid, pt in self.active.items() if pt[1].is_alive()}
        startable, per_pipeline = self._startable()
        started: list[str] = []
        for run in startable:
            if len(self.active) >= self.max_runs:
                break
            entry = self.entries[run.pipeline]
            if per_pipeline[run.pipeline] >= entry.pipeline.max_active_runs:
                continue
            per_pipeline[run.pipeline] += 1
            thread = threading.Thread(
                target=self._execute, args=(entry, run.run_id), daemon=True,
                name=f"cadenza-run-{run.run_id}",
            )
            self.active[run.run_id] = (run.pipeline, thread)
            thread.start()
            started.append(run.run_id)
        return started

    def _startable(self) -> tuple[list[RunRecord], Counter[str]]:
        """The runs this scheduler may start, oldest first, and for each pipeline how many of
        its runs run now: this scheduler's, and those the store shows running (a live owner,
        judged on the store's clock) under any other runner."""
        store = self.workspace.store
        found: list[RunRecord] = []
        running = Counter(pipeline for pipeline, _ in self.active.values())
        R = RunState
        now = store.clock()
        for run in store.runs_in_states([R.QUEUED, R.INTERRUPTED, R.RUNNING, R.WAITING]):
            if run.pipeline not in self.entries or run.run_id in self.active:
                continue
            state = effective_state(run, now, self.stale_after)
            if state == R.RUNNING:
                running[run.pipeline] += 1
            elif state in (R.QUEUED, R.INTERRUPTED) or (
                    state == R.WAITING and self._decided(run)):
                found.append(run)
        return found, running

    def _decided(self, run: RunRecord) -> bool:
        store = self.workspace.store
        decided = {a.task: a for a in store.approvals(run.run_id)}
        return any(ti.state == "awaiting_approval" and ti.task in decided
                   and counts(decided[ti.task], ti.started_at)  # not one a retry set aside
                   for ti in store.task_instances(run.run_id, mapped=False))

    def _execute(self, entry: Entry, run_id: str) -> None:
        # each run writes through its own connection, to the store the scheduler was given
        workspace = Workspace.open(self.workspace.location or self.home)
        pipe = entry.pipeline
        hooks: list[Hooks] = []
        if self.metrics is not None:
            hooks.append(self.metrics.hooks(pipe.name))
        if self.lineage is not None:
            hooks.append(OpenLineageHooks.for_run(self.lineage, pipe, self.home))
        try:
            run_pipeline(pipe, workspace=workspace, resume=run_id, executor=self.executor,
                         workers=self.workers, cancel=self.cancel, hooks=hooks,
                         stale_after=self.stale_after)
        except RunClaimedError:
            pass  # another runner took it first: it is that runner's
        except ClaimLostError as lost:
            self._error(pipe.name, str(lost))
        except StoreError as exc:  # a lock held too long, a full disk: the run is resumed later
            self._error(pipe.name, f"run {run_id} stopped: {exc} The scheduler goes on, and "
                                   "resumes the run once its claim is stale.")
        except Exception as exc:
            self._error(entry.pipeline.name, f"run {run_id} could not run: {exc}")
        finally:
            workspace.close()

    def _error(self, pipeline: str, message: str, kind: str = "scheduler_error",
               **data: str) -> None:
        """Say what went wrong: in ``errors``, through ``on_error``, and as an event in the
        store unless the store cannot take it (locked, full) or the lease is lost."""
        message = mask(message)
        self.errors.append(f"{pipeline}: {message}")
        if self.on_error is not None:
            self.on_error(f"{pipeline}: {message}")
        if self.lost:
            return  # another scheduler serves the store now: this one writes nothing more
        event = Event("", kind, time.time(), None, -1,
                      {"pipeline": pipeline, "error": message, **data})
        try:
            self.workspace.store.apply(Batch(events=[event]))
        except StoreError:
            return  # said above; an alert would only repeat a store failure
        entry = self.entries.get(pipeline)
        router = entry.pipeline.alert_router() if entry is not None else None
        if router is not None:
            router.after_event(event)

    # -- serving ------------------------------------------------------------------------------

    def acquire(self, serving: bool = False) -> None:
        """Take (or renew) the store's scheduler lease for ``lease`` seconds of the store's
        clock, or raise SchedulerBusyError naming its holder; ``serving``: this scheduler held
        it, and finding it taken is SchedulerLeaseLostError (``lost`` set: write nothing more).

        A holder on this host whose process is gone (killed) gives the lease up at once."""
        store = self.workspace.store
        now = store.clock()  # one clock for every scheduler, whatever their hosts' clocks say
        holder = store.acquire_lease(LEASE, self.holder, now + self.lease, now)
        if holder is not None and holder != self.holder and _dead_here(holder):
            store.release_lease(LEASE, holder)
            holder = store.acquire_lease(LEASE, self.holder, now + self.lease, now)
        if holder != self.holder:
            if serving:
                self.lost = True
                raise SchedulerLeaseLostError(self.holder, holder or "unknown", self.lease)
            raise SchedulerBusyError(holder or "unknown", self.lease)
        self.lost = False

    def serve(self, stop: threading.Event, every: float = 1.0, grace: float = 30.0,
              on_tick: Callable[[list[str], list[str]], None] | None = None) -> list[str]:
        """Tick until ``stop`` is set, then give running runs ``grace`` seconds to finish.

        Returns the ids of runs still running after the grace period; they are recorded as
        interrupted, and the next scheduler resumes them. A store locked past its timeout is
        one line (``on_error``) and the next tick tries again. SchedulerLeaseLostError: another
        scheduler took the lease over while this one went unseen; this one creates and starts
        nothing more, lets its runs end (those taken over stop at their next write, which is
        refused), and raises."""
        if every >= self.lease:
            raise CadenzaError(
                f"The scheduler's lease ({self.lease:g}s) must outlast a tick ({every:g}s): it "
                "is renewed each tick. Give a longer --lease or a shorter --tick."
            )
        self.acquire()
        try:
            while not stop.is_set():
                try:
                    self.acquire(serving=True)
                    began = time.perf_counter()
                    created = self.tick()
                    if self.metrics is not None:
                        self.metrics.observe_tick(time.perf_counter() - began)
                    self.acquire(serving=True)  # still ours after the tick (a pause in it)
                    started = self.launch()
                except StoreError as exc:  # locked past its timeout: say so once, tick again
                    if not self._failing:
                        self._error("scheduler", f"ticks are skipped until the store can be "
                                                 f"written again: {exc}")
                    self._failing, created, started = True, [], []
                except SchedulerLeaseLostError:
                    self._shut_down(grace)
                    raise
                else:
                    self._failing = False
                if on_tick is not None:
                    on_tick(created, started)
                stop.wait(every)
            return self._shut_down(grace)
        finally:
            if not self.lost:
                with contextlib.suppress(StoreError):  # a locked store: the lease runs out
                    self.workspace.store.release_lease(LEASE, self.holder)

    def _shut_down(self, grace: float) -> list[str]:
        deadline = time.monotonic() + grace
        for _, thread in list(self.active.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        left = [rid for rid, (_, thread) in self.active.items() if thread.is_alive()]
        store = self.workspace.store
        mine = f"{socket.gethostname()}:{os.getpid()}:"
        for rid in left:  # still ours (their runners' claims): say they stopped, fenced
            record = store.get_run(rid)
            if record.state != RunState.RUNNING or not (record.owner or "").startswith(mine):
                continue
            with contextlib.suppress(ClaimLostError):  # taken over: the new owner's to record
                store.apply(Batch(runs=[move_run(record, RunState.INTERRUPTED)]),
                            (rid, record.epoch))
        return left

    def close(self) -> None:
        self.workspace.close()
