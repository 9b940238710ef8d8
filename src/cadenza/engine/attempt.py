"""One attempt of one task, as a worker runs it: set up ctx and logs, call, store the output.

This is the function the engine submits to executors, so it runs in a worker thread or
process. It never raises: every outcome comes back as an ``AttemptResult``.
"""

from __future__ import annotations

import shlex
import string
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cadenza
from cadenza.artifacts import integrity
from cadenza.artifacts.base import ArtifactStore
from cadenza.artifacts.serializers import deserialize, serialize
from cadenza.engine import branching, logs
from cadenza.engine.cache import file_hash, sha256
from cadenza.engine.context import RecordingParams, TaskContext, reset_context, set_context
from cadenza.engine.outcomes import classify
from cadenza.engine.retry import Retry
from cadenza.engine.states import TaskState
from cadenza.exceptions import (
    CadenzaError,
    CheckFailedError,
    TaskError,
    TaskTimeoutError,
)
from cadenza.executors.inline import body
from cadenza.secrets import mask, mask_data

INLINE_LIMIT = 16 * 1024
"""Values up to this many bytes live in the metadata store; larger ones are files."""
_SMALL = 64
_small_hashes: dict[bytes, str] = {}
"""Hashes of tiny values (None, a count, a flag) seen in this process: many tasks return the
same few, and hashing them again costs more than looking them up."""
_PACKAGE = str(Path(cadenza.__file__).parent)
_SUCCESS = TaskState.SUCCESS  # a module constant: TaskState.X is a slow class lookup


@dataclass(slots=True)
class Call:
    pipeline: str
    run_id: str
    task: str
    map_index: int
    attempt: int
    kind: str
    fn: Callable[..., Any] | None
    kwargs: dict[str, Any]
    params: Mapping[str, Any]
    log_path: str
    home: Path
    root: Path
    retry: Retry
    timeout: float | None
    artifacts: ArtifactStore
    keep_value: bool
    """Return the Python value too (threads, inline); a process sends back bytes only."""
    outputs: dict[str, Path] = field(default_factory=dict)
    command: str | None = None
    shell_inputs: dict[str, Path] = field(default_factory=dict)
    shell_entries: tuple[str, ...] = ()
    interval: tuple[str | None, str | None, str | None] = (None, None, None)
    wants_ctx: bool = False
    checks: tuple[tuple[str, str, Callable[[Any], Any]], ...] = ()
    """(name, severity, check) for the task's output."""
    input_hashes: dict[str, str | None] = field(default_factory=dict)
    resources: Mapping[str, float] | None = None
    """The task's ``resources=``, for executors that place calls by them (dask)."""


@dataclass(slots=True)
class StoredValue:
    serializer: str
    hash: str
    size: int
    data: bytes | None
    uri: str | None


@dataclass(frozen=True, slots=True)
class ValueRef:
    """An upstream value sent to another process by reference: the worker reads it from the
    artifact store (``data``: the bytes themselves, when the metadata store keeps them), so
    values never travel through the runner or a cluster's scheduler."""

    hash: str
    serializer: str
    data: bytes | None = None

    def load(self, artifacts: ArtifactStore) -> Any:
        if self.data is None:
            return deserialize(self.serializer, artifacts.get(self.hash))  # checked there
        return deserialize(self.serializer,
                           integrity.check(self.hash, self.data, "the metadata store"))


@dataclass(slots=True)
class AttemptResult:
    state: TaskState
    kind: str
    started: float
    ended: float
    value: Any = None
    stored: StoredValue | None = None
    files: dict[str, StoredValue] = field(default_factory=dict)
    follow: tuple[str, ...] | None = None
    error: str | None = None
    traceback: str | None = None
    params_read: tuple[str, ...] = ()
    logged: bool = False
    checks: list[dict[str, Any]] = field(default_factory=list)
    shared_log: tuple[str, str] | None = None
    """The hashes of the attempt's text and JSON logs, copied into a shared artifact store."""
    metrics: dict[str, float] = field(default_factory=dict)
    """What the task recorded with ``ctx.log_metric`` (engine/context.py)."""


def store_bytes(artifacts: ArtifactStore, serializer: str, data: bytes) -> StoredValue:
    if len(data) <= _SMALL:
        digest = _small_hashes.get(data)
        if digest is None:
            if len(_small_hashes) >= 4096:  # bounded: a run of distinct values must not grow it
                _small_hashes.clear()
            digest = _small_hashes[data] = sha256(data)
        return StoredValue(serializer, digest, len(data), data, None)
    digest = sha256(data)
    if len(data) <= INLINE_LIMIT:
        return StoredValue(serializer, digest, len(data), data, None)
    return StoredValue(serializer, digest, len(data), None, artifacts.put(digest, data))


def user_traceback(error: BaseException) -> str:
    """The traceback without cadenza's own frames above the user's code."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb or error.__traceback__))


def run_attempt(call: Call) -> AttemptResult:
    logs.ensure_routing()
    log = logs.AttemptLog(call.log_path, call.home)
    params = RecordingParams(call.params)
    context = TaskContext(  # positional: this runs once per attempt
        call.run_id, call.pipeline, call.task, call.map_index, call.attempt, params, call.home,
        call.root, call.outputs, *call.interval, call.input_hashes,
    )
    checks: list[dict[str, Any]] = []
    token = set_context(context)
    logs.bind(log)
    started = time.time()
    before = {name: _signature(path) for name, path in call.outputs.items()} \
        if call.outputs else {}
    try:
        for path in call.outputs.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        if call.kind == "shell":
            value: Any = body(_run_shell, call, log)
        else:
            assert call.fn is not None
            for name, value in call.kwargs.items():
                if type(value) is ValueRef:
                    call.kwargs[name] = value.load(call.artifacts)
            if call.wants_ctx:
                call.kwargs["ctx"] = context
            value = body(call.fn, **call.kwargs)  # where an inline Ctrl-C may land
        if call.checks:
            checks = _run_checks(call, value)
            failed = [c for c in checks if not c["passed"] and c["severity"] == "error"]
            if failed:
                raise CheckFailedError(
                    "; ".join(f"Check {c['check']!r} on task {call.task!r} failed: "
                              f"{c['description'] or 'it returned False'}" for c in failed),
                    task=call.task, run_id=call.run_id, attempt=call.attempt,
                )
        result = _success(call, value, started)
        result.checks = checks
    except BaseException as error:
        if before and not isinstance(error, CheckFailedError):
            _remove_written(call, before)
        if isinstance(error, KeyboardInterrupt | SystemExit) and call.keep_value:
            raise
        outcome = classify(error, call.retry, call.attempt)
        message = str(error) if isinstance(error, CadenzaError) else (
            f"{type(error).__name__}: {error}"
        )
        trace = None if isinstance(error, CheckFailedError) else user_traceback(error)
        if not isinstance(error, CadenzaError):
            print(trace, file=sys.stderr, end="")  # into the attempt's log, masked there
        # Masked here, where the task ran: a worker process knows the secrets its task read
        # (secret("NAME") in the body), which the runner never learns. The runner masks again.
        result = AttemptResult(
            outcome.state, outcome.kind, started, time.time(), error=mask(message),
            traceback=mask(trace) if trace else trace,
            checks=mask_data(checks) if isinstance(error, CheckFailedError) else [],
        )
    finally:
        logs.bind(None)
        reset_context(token)
        log.close()
    if params.read:
        result.params_read = tuple(sorted(params.read))
    result.metrics = context.metrics
    result.logged = log.written
    if log.written and call.artifacts.remote:
        result.shared_log = _share_log(Path(call.log_path), call.artifacts)
    return result


def _share_log(path: Path, artifacts: ArtifactStore) -> tuple[str, str] | None:
    """Copy an attempt's logs (masked as written) into an artifact store other hosts read:
    the runner records their hashes in a ``log_stored`` event, and `cadenza logs` and the UI
    show them from any host. A store that cannot take them leaves them on this host only."""
    hashes = []
    try:
        for file in (path, path.with_suffix(".jsonl")):
            data = file.read_bytes()
            digest = sha256(data)
            artifacts.put(digest, data)
            hashes.append(digest)
    except (OSError, CadenzaError):
        return None
    return hashes[0], hashes[1]


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from another, or None when there is no file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _remove_written(call: Call, before: dict[str, tuple[int, int, int] | None]) -> None:
    """Remove each declared output file the failed attempt wrote or changed: one cut short (a
    full disk, an error halfway) must not stand at its final path as if the task made it. A
    file whose checks failed was written whole, and stays for a look."""
    for name, path in call.outputs.items():
        if _signature(path) not in (None, before[name]):
            try:
                path.unlink()
            except OSError:
                continue  # a folder, or gone already
            print(f"cadenza: removed output {name!r} at {str(path)!r}: the attempt that "
                  "wrote it failed", file=sys.stderr)


def _run_checks(call: Call, value: Any) -> list[dict[str, Any]]:
    """Each check's result as data; a check that raises counts as failed."""
    from cadenza.checks import CheckResult, run_check  # here: most tasks have no checks

    found: list[dict[str, Any]] = []
    for name, severity, check in call.checks:
        try:
            result = run_check(check, value)
        except Exception as exc:
            result = CheckResult(False, f"the check raised {type(exc).__name__}: {exc}")
        found.append({"check": name, "severity": severity, "passed": result.passed,
                      "description": result.description, "metadata": result.metadata})
    return found


def _success(call: Call, value: Any, started: float) -> AttemptResult:
    name, data = serialize(value, call.task)
    stored = store_bytes(call.artifacts, name, data)
    files: dict[str, StoredValue] = {}
    for output, path in call.outputs.items():
        if not path.is_file():
            raise TaskError(
                f"Task {call.task!r} declares output {output!r} at {str(path)!r} but did not "
                "write it. Write the file (its path is ctx.outputs[...]), or remove it from "
                "outputs=.", task=call.task, run_id=call.run_id, attempt=call.attempt,
            )
        digest = file_hash(path)
        uri = call.artifacts.put_file(digest, path)
        files[output] = StoredValue("file", digest, path.stat().st_size, None, uri)
    follow: tuple[str, ...] | None = None
    if call.kind == "branch":
        follow = branching.names(value)  # the loop checks them (engine/branching.py)
    return AttemptResult(  # positional, in field order: this runs once per attempt
        _SUCCESS, "success", started, time.time(),
        value if call.keep_value else None, stored, files, follow,
    )


class _Quoted:
    """``{inputs.name}`` / ``{inputs[0]}`` in a shell command: each value shell-quoted."""

    def __init__(self, what: str, named: Mapping[str, Any], ordered: tuple[Any, ...] = ()):
        self._what, self._named, self._ordered = what, named, ordered

    def __getattr__(self, name: str) -> str:
        if name not in self._named:
            raise KeyError(
                f"{{{self._what}.{name}}} names nothing; known: {sorted(self._named)}"
            )
        return shlex.quote(str(self._named[name]))

    def __getitem__(self, index: int) -> str:
        return shlex.quote(str(self._ordered[index]))


def _copy_output(source: IO[bytes], log: logs.AttemptLog) -> None:
    for line in iter(source.readline, b""):
        log.write(line.decode("utf-8", "replace"), "stdout")
    source.close()


def _run_shell(call: Call, log: logs.AttemptLog) -> dict[str, str]:
    import subprocess  # here: only shell tasks need it, and a run may have none

    from cadenza.executors import _parent_death

    assert call.command is not None
    ordered = tuple(call.shell_inputs.get(e, call.root / e) for e in call.shell_entries)
    fields = {
        "inputs": _Quoted("inputs", call.shell_inputs, ordered),
        "outputs": _Quoted("outputs", call.outputs),
        "params": _Quoted("params", call.params),
        "run_id": shlex.quote(call.run_id),
    }
    try:
        command = string.Formatter().vformat(call.command, (), fields)
    except (KeyError, IndexError, AttributeError) as exc:
        raise TaskError(
            f"Shell task {call.task!r} has a command that cannot be filled in: {exc}. "
            f"The command is {call.command!r}.", task=call.task, run_id=call.run_id,
        ) from None
    log.write(f"$ {command}\n", "stdout")
    # Its output comes through a pipe into the attempt's log, line by line, so secrets in it
    # are masked like everything else a task prints.
    process = subprocess.Popen(
        command, shell=True, cwd=call.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=_parent_death.for_shell(),  # dies with a worker
    )
    assert process.stdout is not None
    reader = threading.Thread(target=_copy_output, args=(process.stdout, log), daemon=True)
    reader.start()
    try:
        process.wait(timeout=call.timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        reader.join(timeout=5)
        raise TaskTimeoutError(
            f"Shell task {call.task!r} ran past its timeout of {call.timeout}s and was killed.",
            task=call.task, run_id=call.run_id, attempt=call.attempt,
        ) from None
    finally:
        if process.poll() is None:  # interrupted (Ctrl-C, cancel): the command goes too
            process.kill()
            process.wait()
    reader.join()
    if process.returncode != 0:
        log.flush()
        tail = Path(call.log_path).read_text(errors="replace").splitlines()[-10:]
        raise TaskError(
            f"Shell task {call.task!r} exited with status {process.returncode}. Last lines "
            "of its output:\n" + "\n".join(tail),
            task=call.task, run_id=call.run_id, attempt=call.attempt,
        )
    return {name: str(path) for name, path in call.outputs.items()}
