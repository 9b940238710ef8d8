"""The MetadataStore protocol and the records it keeps: runs, task instances, attempts,
artifacts, cache entries and the append-only event log.

The engine writes only through ``apply(batch)``: one atomic commit per step of the run loop,
so a state change is durable before any task that depends on it starts.

A run has at most one owner at a time, and only the owner writes: ``claim_run`` takes a run in
one compare-and-set that bumps its epoch, ``heartbeat`` keeps it, and ``apply(batch, fence)``
writes only while the run's epoch is still the writer's (``ClaimLostError`` otherwise, with
nothing written). Liveness is judged on the store's own clock (``clock()``), never by comparing
two machines' clocks; an owner's pid is looked at only on the owner's own host.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cadenza._process import alive
from cadenza.engine.states import RunState


@dataclass(slots=True)
class RunRecord:
    run_id: str
    pipeline: str
    state: str
    params: dict[str, Any]
    created_at: float
    target: str = ""
    """What `cadenza run` was given (file or module), so `--resume` can load it again."""
    started_at: float | None = None
    ended_at: float | None = None
    logical_date: str | None = None
    interval_start: str | None = None
    interval_end: str | None = None
    runner_pid: int | None = None
    """The pid of the runner that last started it, for display (``owner`` says who owns it)."""
    heartbeat: float | None = None
    """When its owner last showed it was alive, on the store's clock."""
    cancel_requested: bool = False
    owner: str | None = None
    """``host:pid:token`` of the runner that holds the claim on it; None when nobody does.
    Written only by ``claim_run``/``release_run`` (and ``create_runs``), never by ``apply``."""
    epoch: int = 0
    """How many times it has been claimed: the fence every write of its owner carries."""


@dataclass(slots=True)
class TaskInstanceRecord:
    run_id: str
    task: str
    map_index: int
    state: str
    attempt: int = 0
    cache_key: str | None = None
    output: str | None = None
    """Content hash of the returned value's artifact."""
    files: dict[str, str] = field(default_factory=dict)
    """Declared output files: name -> content hash."""
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None


@dataclass(slots=True)
class AttemptRecord:
    run_id: str
    task: str
    map_index: int
    attempt: int
    state: str
    started_at: float
    ended_at: float | None = None
    error: str | None = None
    traceback: str | None = None
    log_path: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    """Data-check results: check, severity, passed, description, metadata."""


@dataclass(slots=True)
class ArtifactRecord:
    hash: str
    serializer: str
    size: int
    pipeline: str
    task: str
    run_id: str
    created_at: float
    name: str = "return"
    """``return`` for a returned value, else the declared output's name."""
    uri: str | None = None
    """Where the bytes are, if not inline."""
    data: bytes | None = None
    """The bytes themselves, for small values kept in the store."""
    parents: tuple[str, ...] = ()


@dataclass(slots=True)
class CacheEntry:
    pipeline: str
    task: str
    key: str
    output: str | None
    files: dict[str, str]
    run_id: str
    created_at: float
    meta: dict[str, Any]
    """What the key was made of (code, params, input hashes), for `cadenza plan`."""


@dataclass(slots=True)
class Event:
    run_id: str
    kind: str
    ts: float
    task: str | None = None
    map_index: int = -1
    data: dict[str, Any] = field(default_factory=dict)
    id: int = 0
    key: str | None = field(default=None, compare=False, repr=False)
    """A unique name for this event, given by a store that may retry a commit (PostgreSQL) the
    first time it writes it: an event whose key is known is not written again."""


@dataclass(slots=True)
class Approval:
    """A person's decision on a gate."""

    run_id: str
    task: str
    approved: bool
    by: str
    at: float
    reason: str = ""


@dataclass(slots=True)
class AliasChange:
    """An alias (like ``active``) of a task's output pointed at a version, by someone."""

    pipeline: str
    task: str
    alias: str
    hash: str
    at: float
    by: str = ""
    name: str = "return"
    """Which output: ``return``, or a declared output file's name."""


@dataclass(slots=True)
class Batch:
    """Writes the run loop gathered in one step; a store applies them in one transaction."""

    runs: list[RunRecord] = field(default_factory=list)
    task_instances: list[TaskInstanceRecord] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    cache: list[CacheEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.runs or self.task_instances or self.attempts or self.artifacts or self.cache
            or self.events
        )


STALE_AFTER = 60.0
"""Seconds without a heartbeat (on the store's clock) after which a run's owner counts as gone:
another runner may claim the run, and it shows as interrupted. ``CADENZA_STALE_AFTER`` sets it
(read once, by the CLI)."""
HEARTBEAT_EVERY = 5.0
"""Seconds between a runner's heartbeats, written by a thread of its own (engine/claim.py), so a
long task does not stop them; only a stopped process (Ctrl-Z, SIGSTOP) or a stalled store does.
Twelve beats fit in STALE_AFTER: a runner must miss all of them to lose its run."""

Fence = tuple[str, int]
"""``(run_id, epoch)``: a batch so fenced is applied only while the run's epoch is ``epoch``."""


def owner_gone_here(owner: str) -> bool:
    """True if ``owner`` (``host:pid:token``) names a process on this host that has ended. An
    owner on another host is never judged by its pid: only its heartbeat tells."""
    host, pid, _ = ([*owner.rsplit(":", 2), "", ""])[:3]
    return host == socket.gethostname() and pid.isdigit() and not alive(int(pid))


def owner_live(owner: str | None, age: float, stale_after: float) -> bool:
    """Whether a run's ``owner`` still holds it: there is one, its heartbeat is at most
    ``stale_after`` old (``age``, on the store's clock), and its process has not ended on this
    host. ``claim_run`` takes a run over from another owner exactly when this is false."""
    return owner is not None and age <= stale_after and not owner_gone_here(owner)


def slot_counts(slot_epoch: int, run_epoch: int | None, owner: str | None, age: float,
                stale_after: float) -> bool:
    """Whether a pool slot taken at ``slot_epoch`` still counts: its run is still at that
    epoch and its owner live (``owner_live``)."""
    return run_epoch == slot_epoch and owner_live(owner, age, stale_after)


def judge_slots(held: Iterable[tuple[Any, ...]], holder: SlotHolder, limit: int,
                stale_after: float) -> tuple[bool | None, list[tuple[str, str, int]]]:
    """What a taker of a pool's slot finds among the slots ``held`` (rows of run_id, task,
    map_index, the slot's epoch, its run's epoch, owner and heartbeat age): True if it holds
    one already (asked again after a lost reply), False if it may not take one (its slot is
    held under a newer claim, or ``limit`` live slots are held), None if it may; and the
    (run_id, task, map_index) of the slots that no longer count, for the taker to delete."""
    mine = (holder.run_id, holder.task, holder.map_index)
    live = 0
    dead: list[tuple[str, str, int]] = []
    for run_id, task, index, epoch, run_epoch, owner, age in held:
        if (run_id, task, index) == mine and epoch == holder.epoch:
            return True, dead
        if slot_counts(epoch, run_epoch, owner, age, stale_after):
            if (run_id, task, index) == mine:
                return False, dead  # held under a newer claim: this holder's is lost
            live += 1
        else:
            dead.append((run_id, task, index))
    return (False if live >= limit else None), dead


def effective_state(run: RunRecord, now: float | None = None,
                    stale_after: float = STALE_AFTER) -> str:
    """``running`` while its owner is alive, else ``interrupted``: the owner's pid has ended
    (on this host), or its heartbeat is older than ``stale_after`` at ``now``, a time on the
    store's clock (``store.clock()``; this machine's clock when not given)."""
    if run.state != RunState.RUNNING:
        return run.state
    if run.owner is not None:
        if owner_gone_here(run.owner):
            return RunState.INTERRUPTED.value
    elif run.runner_pid is not None and not alive(run.runner_pid):  # an older cadenza's run
        return RunState.INTERRUPTED.value
    if run.heartbeat is not None and (now or time.time()) - run.heartbeat > stale_after:
        return RunState.INTERRUPTED.value
    return RunState.RUNNING.value


class RunStore(Protocol):
    """Runs: the engine's one write path, and reading runs back."""

    def apply(self, batch: Batch, fence: Fence | None = None) -> None:
        """Write ``batch`` in one transaction; with ``fence=(run_id, epoch)``, only if the
        run's epoch is still ``epoch``, else write nothing and raise ``ClaimLostError``."""
        ...
    def get_run(self, run_id: str) -> RunRecord: ...
    def list_runs(self, pipeline: str | None = None, limit: int = 50, offset: int = 0
                  ) -> list[RunRecord]:
        """Runs newest first, of one pipeline or all; ``offset`` skips that many (paging)."""
        ...
    def pipelines(self) -> list[str]:
        """The names of the pipelines that have runs, sorted."""
        ...
    def request_cancel(self, run_id: str, requested: bool = True) -> None: ...
    def create_runs(self, runs: Iterable[RunRecord]) -> list[str]:
        """Insert each run unless its pipeline has a run for its logical date (or its id is
        taken), in one transaction; return the ids inserted."""
        ...
    def runs_in_states(self, states: Iterable[str]) -> list[RunRecord]: ...
    def close(self) -> None: ...


class RunClaims(Protocol):
    """Who owns each run: a claim bumps the run's epoch, heartbeats keep it, fences check it."""

    def clock(self) -> float:
        """The store's time (seconds since the epoch): what heartbeats are judged by."""
        ...
    def claim_run(self, run_id: str, owner: str, stale_after: float = STALE_AFTER
                  ) -> int | None:
        """Make ``owner`` the run's owner and return its new epoch, if nobody owns it, or its
        owner's heartbeat is older than ``stale_after`` on the store's clock, or its owner's
        process has ended on this host; else None. One atomic compare-and-set."""
        ...
    def heartbeat(self, run_id: str, owner: str, epoch: int) -> bool:
        """Note that ``owner`` is alive; False if its claim (``epoch``) is lost."""
        ...
    def release_run(self, run_id: str, owner: str, epoch: int) -> None:
        """Give the run up, if ``owner`` still holds it at ``epoch``."""
        ...


@dataclass(frozen=True, slots=True)
class SlotHolder:
    """Who holds (or wants) a pool slot: one task instance of a run, under the claim at
    ``epoch``. A slot counts only while that claim lives (see ``PoolSlots``)."""

    run_id: str
    task: str
    map_index: int
    epoch: int


@dataclass(slots=True)
class Slot:
    """A slot of a pool, held in the store by a task instance of a run."""

    pool: str
    run_id: str
    task: str
    map_index: int
    epoch: int
    taken_at: float
    """When it was taken, on the store's clock."""


class PoolSlots(Protocol):
    """Pools across runs and runners: a task in a pool runs only while it holds one of the
    pool's slots, kept in the store. A slot counts while its run's claim is the one it was
    taken under and is live (as ``claim_run`` judges it); any other is dead, and the next
    taker deletes it."""

    def take_slot(self, pool: str, limit: int, holder: SlotHolder,
                  stale_after: float = STALE_AFTER) -> bool:
        """Give ``holder`` a slot of ``pool`` if fewer than ``limit`` live holders have one
        (True), else False; one atomic compare-and-set. True if it holds one already."""
        ...
    def release_slot(self, pool: str, holder: SlotHolder) -> None:
        """Give ``holder``'s slot back (only the one taken at its epoch)."""
        ...
    def release_slots(self, run_id: str, epoch: int) -> None:
        """Give back every slot the run holds under its claim at ``epoch``."""
        ...
    def slots(self, pool: str | None = None) -> list[Slot]:
        """The slots held, of one pool or all, live or not, oldest first."""
        ...


class TaskStore(Protocol):
    """What happened inside runs: task instances, attempts, gate decisions, the event log."""

    def task_instances(self, run_id: str, mapped: bool = True) -> list[TaskInstanceRecord]:
        """A run's task instances; ``mapped=False`` leaves out the items of mapped tasks."""
        ...
    def attempts(self, run_id: str, task: str | None = None) -> list[AttemptRecord]: ...
    def decide(self, approval: Approval) -> None: ...
    def approvals(self, run_id: str) -> list[Approval]: ...
    def events(self, run_id: str | None = None, after: int = 0, *, before: int | None = None,
               limit: int | None = None) -> list[Event]:
        """Events with ids above ``after``, oldest first; with ``before``, the ``limit`` newest
        with ids below it, newest first (a feed's pages)."""
        ...


class ArtifactIndex(Protocol):
    """Artifacts' records (the bytes are in an ArtifactStore), versions, aliases, the cache."""

    def artifact(self, hash: str) -> ArtifactRecord | None: ...
    def artifact_data(self, hashes: Collection[str]) -> dict[str, tuple[str, bytes | None]]:
        """For each recorded artifact among ``hashes``: its serializer, and its bytes if the
        store keeps them, else None (they are in a file). One read for many: a mapped task's
        items ask together."""
        ...
    def artifacts(self, pipeline: str | None = None, limit: int = 100) -> list[ArtifactRecord]: ...
    def versions(self, pipeline: str, task: str, name: str = "return",
                 limit: int | None = None) -> list[ArtifactRecord]:
        """The distinct outputs a task has stored, newest first (without their bytes)."""
        ...
    def set_alias(self, change: AliasChange) -> None: ...
    def alias_history(self, pipeline: str, task: str, alias: str, name: str = "return"
                      ) -> list[AliasChange]:
        """Every change of the alias, newest first: the first is where it points now."""
        ...
    def cache_entries(self, pipeline: str, task: str | None = None, *,
                      keys: Collection[str] | None = None, limit: int | None = None
                      ) -> list[CacheEntry]:
        """Cache entries newest first, of a pipeline, or one task, or only those under
        ``keys`` (any number, read together)."""
        ...
    def newest_cache_entries(self, pipeline: str, tasks: Collection[str]
                             ) -> dict[str, CacheEntry]:
        """Each of ``tasks``' newest cache entry (tasks with none are left out), read
        together: `cadenza plan` asks for every task's."""
        ...


class SchedulerState(Protocol):
    """What the scheduler keeps between ticks and restarts."""

    def latest_intervals(self) -> dict[str, str]:
        """For each pipeline, the interval_end of its latest scheduled run (ISO, UTC)."""
        ...
    def set_paused(self, pipeline: str, paused: bool) -> None: ...
    def paused(self) -> set[str]: ...
    def get_cursor(self, key: str) -> Any: ...
    def set_cursor(self, key: str, value: Any) -> None: ...
    def acquire_lease(self, name: str, holder: str, until: float, now: float) -> str | None:
        """Hold ``name`` until ``until`` unless another holder's lease is live; return the
        holder that has it now."""
        ...
    def release_lease(self, name: str, holder: str) -> None: ...


class MetadataStore(RunStore, RunClaims, PoolSlots, TaskStore, ArtifactIndex, SchedulerState,
                    Protocol):
    """Everything cadenza records, grouped by entity: one class implements all six parts
    (SqliteStore, MemoryStore), and the contract suite in cadenza.testing checks each."""
