"""The MetadataStore protocol and the records it keeps: runs, task instances, attempts,
artifacts, cache entries and the append-only event log.

The engine writes only through ``apply(batch)``: one atomic commit per step of the run loop,
so a state change is durable before any task that depends on it starts.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cadenza._process import alive


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
    heartbeat: float | None = None
    cancel_requested: bool = False


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
"""A running run whose runner has not beaten its heart for this long is interrupted."""


def effective_state(run: RunRecord, now: float | None = None) -> str:
    """``running`` only while its runner lives; a dead runner leaves it ``interrupted``."""
    if run.state != "running":
        return run.state
    if run.runner_pid is not None and not alive(run.runner_pid):
        return "interrupted"
    if run.heartbeat is not None and (now or time.time()) - run.heartbeat > STALE_AFTER:
        return "interrupted"
    return "running"


class RunStore(Protocol):
    """Runs: the engine's one write path, and reading runs back."""

    def apply(self, batch: Batch) -> None: ...
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


class MetadataStore(RunStore, TaskStore, ArtifactIndex, SchedulerState, Protocol):
    """Everything cadenza records, grouped by entity: one class implements all four parts
    (SqliteStore, MemoryStore), and the contract suite in cadenza.testing checks each."""
