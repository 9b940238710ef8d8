"""Every error cadenza raises, one tree under ``CadenzaError``.

    CadenzaError
    ├── DefinitionError            the pipeline as written cannot be built (.pipeline, .task)
    │   ├── CycleError             .cycle: the tasks in the loop, first repeated last
    │   ├── UnknownInputError      .name, .suggestion: an input names no task or param
    │   ├── DuplicateTaskError     two tasks share a name
    │   └── InvalidOptionError     .option, .value: retries, timeout, trigger rule, ...
    ├── PipelineLoadError          a FILE_OR_MODULE[:PIPELINE] could not give one pipeline
    ├── ParamError                 .param: unknown or malformed run parameter
    ├── SerializationError         .task: a return value no serializer could store
    ├── DamagedArtifactError       .hash, .found: stored bytes no longer match their hash
    ├── InvalidTransitionError     .task, .run_id, .old, .new: the state machine said no
    ├── RunNotFoundError           .run_id
    ├── RunClaimedError            .run_id, .owner: a live runner owns the run
    ├── ClaimLostError             .run_id, .owner: another runner took this one's run
    ├── StoreError                 .path: the metadata store's file could not be used
    │   ├── StoreBusyError         .timeout: another process held the write lock too long
    │   ├── StoreFullError         the disk (or quota) holding .path is full
    │   └── StoreDamagedError      .problem: the file failed PRAGMA quick_check, or is a copy
    │                              made without its -wal file; nothing is written to it
    └── TaskError                  .task, .run_id, .attempt: a task's own failure, wrapped once
        ├── TaskTimeoutError       the attempt ran past its timeout
        ├── CheckFailedError       .checks: an error-severity data check failed
        └── WorkerCrashedError     .exitcode: the process running the attempt died

``Cancelled`` is a ``BaseException``, like ``KeyboardInterrupt``: a task body must not swallow it.
"""

from __future__ import annotations


class CadenzaError(Exception):
    """Base class of every error cadenza raises on purpose."""


class DefinitionError(CadenzaError):
    def __init__(self, message: str, *, pipeline: str | None = None, task: str | None = None):
        super().__init__(message)
        self.pipeline = pipeline
        self.task = task


class CycleError(DefinitionError):
    def __init__(self, message: str, *, pipeline: str, cycle: list[str]):
        super().__init__(message, pipeline=pipeline, task=cycle[0])
        self.cycle = cycle


class UnknownInputError(DefinitionError):
    def __init__(
        self, message: str, *, pipeline: str, task: str, name: str, suggestion: str | None
    ):
        super().__init__(message, pipeline=pipeline, task=task)
        self.name = name
        self.suggestion = suggestion


class DuplicateTaskError(DefinitionError):
    pass


class InvalidOptionError(DefinitionError):
    def __init__(
        self,
        message: str,
        *,
        option: str,
        value: object,
        pipeline: str | None = None,
        task: str | None = None,
    ):
        super().__init__(message, pipeline=pipeline, task=task)
        self.option = option
        self.value = value


class PipelineLoadError(CadenzaError):
    def __init__(self, message: str, *, target: str):
        super().__init__(message)
        self.target = target


class ParamError(CadenzaError):
    def __init__(self, message: str, *, param: str):
        super().__init__(message)
        self.param = param


class SerializationError(CadenzaError):
    def __init__(self, message: str, *, task: str | None = None):
        super().__init__(message)
        self.task = task


class DamagedArtifactError(CadenzaError):
    """Stored bytes whose SHA-256 is no longer the hash they were stored under: never used."""

    def __init__(self, hash: str, found: str, where: str = ""):
        place = f" at {where}" if where else ""
        super().__init__(
            f"Artifact {hash[:16]}{place} is damaged: its content now hashes to {found[:16]}. "
            "It was not used and is set aside; run the pipeline again and the task that made "
            "it runs again to store a good copy."
        )
        self.hash = hash
        self.found = found


class InvalidTransitionError(CadenzaError):
    def __init__(self, *, task: str | None = None, run_id: str, old: str, new: str):
        what = f"run {run_id}" if task is None else f"task {task!r} in run {run_id}"
        super().__init__(f"{what}: cannot go from {old} to {new}")
        self.task = task
        self.run_id = run_id
        self.old = old
        self.new = new


class RunNotFoundError(CadenzaError):
    def __init__(self, run_id: str):
        super().__init__(
            f"No run has the id {run_id!r}. List the recorded runs with `cadenza runs`."
        )
        self.run_id = run_id


class RunClaimedError(CadenzaError):
    """A claim was refused: ``owner`` (``host:pid:token``) runs the run and is alive."""

    def __init__(self, run_id: str, owner: str | None):
        super().__init__(
            f"Run {run_id} is being run by {owner!r}, which is alive; wait for it to end, or "
            f"stop it with `cadenza cancel {run_id}`."
        )
        self.run_id = run_id
        self.owner = owner


class ClaimLostError(CadenzaError):
    """A runner's claim on its run was taken over (``owner`` holds it now), or given up because
    the store could not be reached for ``unreachable`` seconds: the runner stops, and the
    write that found out changed nothing."""

    def __init__(self, run_id: str, owner: str | None, unreachable: float | None = None):
        if unreachable is not None:
            text = (f"Run {run_id} was given up: this runner could not reach the store for "
                    f"{unreachable:.0f}s, so another runner may take the run over; it stopped "
                    "and wrote nothing more. Once the store is back, see the run with "
                    f"`cadenza status {run_id}` and resume it with `cadenza run --resume "
                    f"{run_id}`.")
        else:
            text = (f"Run {run_id} was taken over by "
                    f"{repr(owner) if owner else 'another runner'} while this runner went "
                    "unseen (stopped, or stalled past the claim's staleness limit); this runner "
                    f"stopped and wrote nothing more. See the run with `cadenza status {run_id}`.")
        super().__init__(text)
        self.unreachable = unreachable
        self.run_id = run_id
        self.owner = owner


class StoreError(CadenzaError):
    """The metadata store's file could not be used; ``path`` names it."""

    def __init__(self, message: str, *, path: str):
        super().__init__(message)
        self.path = path


class StoreBusyError(StoreError):
    """Another process held the store's write lock for longer than ``timeout`` seconds."""

    def __init__(self, path: str, timeout: float):
        super().__init__(
            f"The store {path!r} stayed locked by another process's write for {timeout:g} s, "
            "so nothing was written. Let that process finish (`fuser` on the file names it) "
            "and run the command again, or wait longer with CADENZA_DB_TIMEOUT=SECONDS.",
            path=path,
        )
        self.timeout = timeout


class StoreFullError(StoreError):
    """The disk holding ``path`` had no room left for a write (which was not kept)."""

    def __init__(self, path: str, detail: str = "database or disk is full"):
        super().__init__(
            f"No space is left on the disk holding {path!r} ({detail}); what could not be "
            "written was not kept. Free some space there and run the command again.",
            path=path,
        )


class StoreDamagedError(StoreError):
    """The store's file is damaged (``problem`` quotes PRAGMA quick_check) or incomplete."""

    def __init__(self, path: str, problem: str, advice: str = ""):
        super().__init__(
            f"The store {path!r} is damaged: {problem}. cadenza will not write to it. "
            + (advice or "Restore it from a backup, or save what is readable with "
               f"`sqlite3 {path} .recover | sqlite3 recovered.db` and use that file."),
            path=path,
        )
        self.problem = problem


class TaskError(CadenzaError):
    def __init__(
        self, message: str, *, task: str = "", run_id: str = "", attempt: int = 0
    ):
        super().__init__(message)
        self.task = task
        self.run_id = run_id
        self.attempt = attempt


class TaskTimeoutError(TaskError):
    pass


class CheckFailedError(TaskError):
    """A data check of severity "error" failed on the task's output; retrying cannot help."""


class WorkerCrashedError(TaskError):
    def __init__(self, message: str, *, exitcode: int | None = None, **fields: object):
        super().__init__(message, **fields)  # type: ignore[arg-type]
        self.exitcode = exitcode


class Cancelled(BaseException):
    """Raised inside a task, or recorded for it, when its run is cancelled."""
