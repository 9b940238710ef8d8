"""Start a run from Python: resolve params and the workspace, pick the executor, build the
Runner, run it. Everything here happens once per run, before the loop in engine/run.py.
Also the scratch workspace `cadenza task` tries one task in (``dry_workspace``)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cadenza.artifacts.base import ArtifactStore
from cadenza.artifacts.local import LocalArtifactStore
from cadenza.engine import logs
from cadenza.engine.claim import Claim, new_owner
from cadenza.engine.hooks import Hooks
from cadenza.engine.result import RunResult
from cadenza.engine.run import Runner, new_run_id
from cadenza.engine.states import RunState, TaskState, move_run
from cadenza.exceptions import CadenzaError
from cadenza.executors import Executor, ThreadExecutor, inline, make_executor
from cadenza.params import as_param, resolve_params
from cadenza.pipeline import Pipeline
from cadenza.secrets import MASK, SecretKeyError, is_sealed, register_param, sealed_params, unseal
from cadenza.store.base import (
    STALE_AFTER,
    ArtifactRecord,
    AttemptRecord,
    Batch,
    CacheEntry,
    Event,
    RunRecord,
    TaskInstanceRecord,
)
from cadenza.store.memory import MemoryStore
from cadenza.workspace import Workspace

S = TaskState
T = TypeVar("T")


def run_pipeline(
    pipe: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | Executor = "inline",
    workers: int | None = None,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
    resume: str | None = None,
    only: Iterable[str] | None = None,
    from_: Iterable[str] | None = None,
    force: bool = False,
    hooks: Iterable[Hooks] = (),
    cancel: threading.Event | None = None,
    target: str = "",
    params_from_text: bool = False,
    provided: Mapping[str, Any] | None = None,
    approve: Iterable[str] = (),
    wait: bool = False,
    reset: bool = False,
    still_running: list[str] | None = None,
    claim: Claim | None = None,
    stale_after: float = STALE_AFTER,
) -> RunResult:
    """Run ``pipe`` and return its result. Raises only for bad input, never for a task's failure.

    ``executor``: inline, threads, processes, or an Executor. ``home``: the ``.cadenza`` folder
    (default: found from the working directory). ``resume``: a run id to continue, re-running
    only what did not succeed. ``only``/``from_``: run just these tasks (and, with ``from_``,
    everything downstream), taking other outputs from earlier runs. ``force``: ignore the cache.
    ``reset`` (with ``resume``): run every task of the run again, not only what failed.
    ``approve``: gates to approve up front. ``wait``: keep running while gates wait for a
    decision (else the run ends ``waiting``, to be resumed after a decision).
    ``still_running``: a list this call fills, as it returns or raises, with the tasks whose
    calls run on past the run's end: a cancelled (or timed-out) call on threads cannot be
    stopped. Until they return, what they print still goes to their logs.
    ``claim``: the caller's claim on ``resume`` (the CLI claims before importing anything);
    else the run is claimed here, and RunClaimedError names a live owner. A new run is created
    claimed. ``stale_after``: seconds without a heartbeat after which a claim may be taken
    over (engine/claim.py). ClaimLostError: another runner took the run over; this one
    stopped without writing more.
    """
    selected = select(pipe, only, from_)  # builds the graph: definition errors come first
    ws = workspace or Workspace.open(home)
    prior: list[TaskInstanceRecord] = []
    dead: list[AttemptRecord] = []
    cleared: set[str] = set()
    try:  # from here on the run may be claimed: whatever happens, the claim is given up
        if resume is not None:
            run = ws.store.get_run(resume)
            if run.pipeline != pipe.name:
                raise CadenzaError(
                    f"Run {resume} belongs to pipeline {run.pipeline!r}, not {pipe.name!r}."
                )
            if params:
                raise CadenzaError("A resumed run keeps its own params; do not pass new ones.")
            if claim is None:
                claim = Claim.take(ws.store, resume, stale_after)
            run, prior, dead, cleared = _taken_over(ws, resume, reset)
            try:
                real = stored_params(pipe, run, _key_home(ws))
            except SecretKeyError as exc:
                _fail_to_start(ws, run, claim, str(exc))
                raise
        else:
            real = resolve_params(pipe.name, pipe.params, params, from_text=params_from_text)
            owner = new_owner()
            run = RunRecord(new_run_id(pipe.name), pipe.name, RunState.RUNNING.value,
                            sealed_params(real, pipe.secret_params, params or {},
                                          _key_home(ws)),
                            time.time(), target=target, owner=owner)
            claim = Claim(run.run_id, owner, 1, stale_after)  # create_runs makes it epoch 1
        return _run(pipe, ws, run, claim, executor, workers, still_running, hooks=hooks,
                    selected=selected, force=force, cancel=cancel, prior=prior,
                    provided=provided, approve=approve, wait=wait, params=real, dead=dead,
                    cleared=cleared, create=resume is None)
    finally:
        if claim is not None:
            claim.stop(ws.store)


def stored_params(pipe: Pipeline, run: RunRecord, home: Path | None) -> dict[str, Any]:
    """The params a resumed (or queued) run runs with. A secret param given for the run was
    stored sealed and is opened here (SecretKeyError if this host's key cannot); one stored
    as ``***`` takes the pipeline's default again, as it did when the run was made."""
    defaults = resolve_params(pipe.name, pipe.params, None)
    real = dict(run.params)
    for name in sorted(pipe.secret_params):  # the first that cannot be opened is named
        value = real.get(name, MASK)
        if is_sealed(value):
            real[name] = as_param(pipe.params[name]).check(name, unseal(name, value, home))
        elif value == MASK:
            real[name] = defaults[name]
    return real


def _key_home(ws: Workspace) -> Path | None:
    """Where the sealing key of ``ws`` lives when CADENZA_SECRET_KEY is not set (None: in
    this process only, for a workspace in memory)."""
    return None if ws.in_memory else ws.home


def _fail_to_start(ws: Workspace, run: RunRecord, claim: Claim, error: str) -> None:
    """Record the claimed ``run`` failed before any task ran, with ``error`` in its
    run_finished event, so the scheduler does not pick it up again; `cadenza retry` queues
    it once the cause is fixed."""
    if RunState(run.state) != RunState.RUNNING:
        move_run(run, RunState.RUNNING)
    move_run(run, RunState.FAILED)
    now = time.time()
    run.ended_at = now
    ws.store.apply(Batch(runs=[run], events=[Event(run.run_id, "run_finished", now, data={
        "state": RunState.FAILED.value, "error": error})]), claim.fence)


def _run(pipe: Pipeline, ws: Workspace, run: RunRecord, claim: Claim, executor: str | Executor,
         workers: int | None, still_running: list[str] | None, *, create: bool,
         **options: Any) -> RunResult:
    """Run the claimed ``run`` (``create``: a new one, recorded here) on ``executor``."""
    for name in pipe.secret_params:
        register_param(name, options["params"][name])
    if isinstance(executor, str):
        if executor == "processes" and ws.in_memory:
            raise CadenzaError(
                "The processes executor needs a workspace on disk; an in-memory workspace "
                "cannot be shared with worker processes. Use inline or threads, or pass home=."
            )
        runner_executor, owned = make_executor(executor, workers), True
    else:
        runner_executor, owned = executor, False
    watched = _Watched(runner_executor) if isinstance(runner_executor, ThreadExecutor) else None
    logs.install()  # held past the run while calls run on: see _Watched
    try:
        runner = Runner(pipe, ws, watched or runner_executor, run, claim=claim, **options)
        if create:
            ws.store.create_runs([run])
        claim.start(ws.store)
        # Ctrl-C as Python leaves it (a script, a notebook): it cancels the run in the loop,
        # as on the command line, and is raised once the run is recorded
        with inline.signals_cancel(runner.cancel, (signal.SIGINT,), only_default=True) as got:
            result = runner.execute()
        if got:
            raise KeyboardInterrupt
        return result
    finally:
        if owned:
            runner_executor.shutdown(wait=False)
        left = watched.end() if watched is not None else []
        if still_running is not None:
            still_running.extend(left)
        if not left:
            logs.uninstall()


def _taken_over(ws: Workspace, run_id: str, reset: bool
                ) -> tuple[RunRecord, list[TaskInstanceRecord], list[AttemptRecord], set[str]]:
    """A claimed run as its last owner left it: the run (interrupted if it was running), its
    task instances (all pending with ``reset``), the attempts left ``running``, which the
    runner closes, and the tasks a person cleared (actions.clear) that have not run again
    since, which run whatever their cache holds. Attempt numbers go on after the highest
    recorded, never reused."""
    store = ws.store
    store.request_cancel(run_id, False)
    run = store.get_run(run_id)
    if run.state == RunState.RUNNING:  # its owner died or went silent: the claim says so
        move_run(run, RunState.INTERRUPTED)
    prior = store.task_instances(run_id)
    attempts = store.attempts(run_id)
    highest: dict[tuple[str, int], int] = {}
    for attempt in attempts:
        key = (attempt.task, attempt.map_index)
        highest[key] = max(highest.get(key, 0), attempt.attempt)
    for ti in prior:
        ti.attempt = max(ti.attempt, highest.pop((ti.task, ti.map_index), 0))
        if reset:  # run every task again, numbering attempts on from the earlier ones
            ti.state = S.PENDING.value
    prior += [TaskInstanceRecord(run_id, task, index, S.PENDING.value, attempt)  # no row yet
              for (task, index), attempt in highest.items()]
    pending = {ti.task for ti in prior if ti.state == S.PENDING}
    cleared = {task for event in store.events(run_id) if event.kind == "task_cleared"
               for task in event.data.get("tasks", ()) if task in pending}
    return run, prior, [a for a in attempts if a.state == "running"], cleared


class _Watched:
    """A thread pool that knows which calls its threads are in. A call that was cancelled or
    timed out runs on (a thread cannot be stopped): the caller is told which, and what such a
    call prints goes on to its log, not to the terminal, until the last of them returns.

    Each thread notes its call itself, so an interrupt landing in the run loop at any point
    (between submit and the loop noting the Future, say) cannot lose one."""

    def __init__(self, inner: ThreadExecutor) -> None:
        self.inner, self.max_workers = inner, inner.max_workers
        self._lock = threading.Lock()
        self._active: dict[int, str] = {}
        self._releases = False
        """True once the run is over with calls running: the last of them releases routing."""

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        call = args[0] if args else None
        index = getattr(call, "map_index", -1)
        label = str(getattr(call, "task", "?")) + (f"[{index}]" if index >= 0 else "")
        return self.inner.submit(self._watch, label, fn, *args)

    def _watch(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        me = threading.get_ident()
        with self._lock:
            self._active[me] = label
        try:
            return fn(*args)
        finally:
            with self._lock:
                del self._active[me]
                last = self._releases and not self._active
                self._releases = self._releases and not last
            if last:
                logs.uninstall()

    def shutdown(self, wait: bool = True) -> None:
        self.inner.shutdown(wait)

    def end(self) -> list[str]:
        """The run is over: the calls still running, sorted. Output routing is released by
        the last of them to return (by the caller, if none is running)."""
        with self._lock:
            self._releases = bool(self._active)
            return sorted(self._active.values())


def select(
    pipe: Pipeline, only: Iterable[str] | None, from_: Iterable[str] | None
) -> set[str] | None:
    """The tasks --only and --from pick (None: all of them), each name checked."""
    graph = pipe.graph()
    chosen: set[str] | None = None
    for flag, names in (("--only", only), ("--from", from_)):
        if names is None:
            continue
        names = list(names)
        for name in names:
            if name not in graph.nodes:
                raise CadenzaError(
                    f"{flag} {name!r}: pipeline {pipe.name!r} has no such task. Its tasks are: "
                    + ", ".join(graph.order) + "."
                )
        picked = set(names) if flag == "--only" else graph.descendants(names)
        chosen = picked if chosen is None else chosen | picked
    return chosen


KEPT = 20
"""Cache entries of each upstream task a dry workspace reads from the project's store: the
runner takes the newest that is intact."""


@dataclass
class DryWorkspace(Workspace):
    """Where `cadenza task` tries one task: records in memory, bytes and logs under
    ``scratch``, nothing written to the project's store. Reads fall through to the project's
    artifacts; paths in the pipeline resolve against the project, as in a real run."""

    project: Path = field(default_factory=Path)
    scratch: Path = field(default_factory=Path)
    sources: dict[str, str] = field(default_factory=dict)
    """Output hash -> the run that made it, for the outputs taken from the project's store."""

    @property
    def root(self) -> Path:
        return self.project

    @property
    def logs(self) -> Path:
        return self.scratch / "logs"


class _ReadThrough:
    """Writes go to ``own``; reads look there first, then in ``under``, which is never
    written."""

    def __init__(self, own: ArtifactStore, under: ArtifactStore | None) -> None:
        self.own, self.under = own, under
        self.remote = own.remote

    def put(self, hash: str, data: bytes) -> str:
        return self.own.put(hash, data)

    def put_file(self, hash: str, source: Path) -> str:
        return self.own.put_file(hash, source)

    def _holder(self, hash: str) -> ArtifactStore:
        if self.under is None or self.own.exists(hash):
            return self.own
        return self.under

    def get(self, hash: str) -> bytes:
        return self._holder(hash).get(hash)

    def exists(self, hash: str) -> bool:
        return self._holder(hash).exists(hash)

    def path(self, hash: str) -> Path | None:
        return self._holder(hash).path(hash)

    def delete(self, hash: str) -> None:
        self.own.delete(hash)


def dry_workspace(pipe: Pipeline, task: str, project: Workspace | None, root: Path,
                  scratch: Path, provided: Iterable[str] = ()) -> DryWorkspace:
    """A scratch workspace to run ``task`` of ``pipe`` alone in. The outputs it reads from
    earlier runs (all its inputs but ``provided``) are looked up in ``project``'s store (only
    read) and their records copied in; their bytes are read from the project when needed."""
    store = MemoryStore()
    sources: dict[str, str] = {}
    if project is not None:
        batch = Batch()
        seen: set[str] = set()
        for up in sorted(pipe.graph().needed_outputs({task}) - set(provided)):
            for entry in project.store.cache_entries(pipe.name, up, limit=KEPT):
                batch.cache.append(entry)
                batch.artifacts.extend(_records(project, entry, seen))
                if entry.output is not None:
                    sources.setdefault(entry.output, entry.run_id)
        store.apply(batch)
    home = scratch / ".cadenza"
    artifacts = _ReadThrough(LocalArtifactStore(home / "artifacts"),
                             project.artifacts if project is not None else None)
    return DryWorkspace(home, store, artifacts, in_memory=True, project=root, scratch=scratch,
                        sources=sources)


def _records(project: Workspace, entry: CacheEntry, seen: set[str]) -> list[ArtifactRecord]:
    found = []
    for digest in (entry.output, *entry.files.values()):
        if digest is not None and digest not in seen:
            seen.add(digest)
            record = project.store.artifact(digest)
            if record is not None:
                found.append(record)
    return found
