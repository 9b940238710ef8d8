"""On a Dask worker: a warm pool of forked processes per DaskExecutor, which runs its calls.

The first call of an executor on a worker process starts its pool there: a ``ProcessExecutor``
of as many processes as the worker has threads, forked by the worker (after it loaded the
call's pipeline, so the children inherit it) and armed with the parent-death signal, so that
they die with the worker. Each Dask task hands its call to a free child and waits for the
answer. ``kill`` SIGKILLs the child running a call, and the pool forks a replacement; a child
that ends itself (a segfault, ``os._exit``) fails only its call, and the worker lives on. The
executor closes its pools when it shuts down, so no process that ran one of its calls
outlives it.

``PoolPlugin``, which the executor registers on the cluster, kills the child of a call whose
Dask task is cancelled while it runs: its client released it because the runner died (or
cancelled it in Dask). The pools of a runner that died stay until they have been idle for
``_IDLE`` seconds.

With ``isolation="threads"`` an attempt runs in the Dask task's own thread instead: no pool,
no fork, and nothing can stop it once it runs (``kill`` stops only calls still waiting).

Logs: a task's output goes to its attempt log at the runner's path, which is the runner's own
file when this worker sees the runner's folder (a LocalCluster, a shared filesystem: the
runner's probe file is there). Else the attempt writes a log file of its own here, which a
thread sends home in pieces every ``_TAIL_EVERY`` seconds as Dask events (``Worker.log_event``
on the executor's topic, with the byte offset of each piece); the call's answer carries the
last piece. What travels is what the attempt wrote, so its secrets are masked already.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from multiprocessing import util
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from cadenza.exceptions import WorkerCrashedError
from cadenza.executors import ref
from cadenza.executors.processes import ProcessExecutor, _run

_TOMBSTONES = 10_000  # killed call ids a worker keeps, so one killed before it started never runs

_lock = threading.Lock()
_pools: dict[str, ProcessExecutor] = {}  # executor token -> its pool on this worker
_running: dict[str, Future[bytes]] = {}  # call id -> its call in a pool
_stopped: set[str] = set()  # calls that kill() stopped in a pool
_tombstones: dict[str, None] = {}  # calls killed before they reached this worker's pool
_busy: dict[str, int] = {}  # executor token -> its calls in its pool here
_used: dict[str, float] = {}  # executor token -> when a call of its last ended here (monotonic)
_finalizer: Any = None
_reaper: threading.Thread | None = None
_IDLE = 300.0  # seconds after which an executor's pool with no calls here is closed
_TAIL_EVERY = 0.5  # seconds between two pieces of a log sent home
_threads: set[str] = set()  # calls running in a Dask thread here (isolation="threads")
_sees: dict[str, bool] = {}  # a runner's probe file -> whether this worker sees it
_tails: dict[str, _Tail] = {}  # call id -> its log here, sent home in pieces
_tailer: threading.Thread | None = None

# A fork waits for the imports under way in this worker's other threads (a call's module, its
# pipeline): a child forked while one holds its module's import lock would wait for it forever
# when it imports that module. Reentrant: an import that forks goes on.
_loading = threading.RLock()
os.register_at_fork(before=lambda: _loading.acquire(),
                    after_in_parent=lambda: _loading.release(),
                    after_in_child=lambda: _loading.release())

Piece = tuple[int, bytes]
"""A piece of an attempt's text log: its byte offset in the log, and its bytes."""


@dataclass(slots=True)
class Logs:
    """Where a call's attempt log goes: ``probe``, a file the runner made beside its logs
    (seen here: the runner's files are this worker's), and the Dask event ``topic`` on
    which the runner takes the pieces of a log written here."""

    probe: str
    topic: str


@dataclass(eq=False, slots=True)
class _Tail:
    path: str
    topic: str
    worker: Any
    sent: int = 0


class PoolPlugin(WorkerPlugin):
    """On every Dask worker: kill the child running a call whose Dask task was cancelled
    while it ran (the runner that sent it died, or cancelled it in Dask)."""

    name = "cadenza-pools"
    idempotent = True  # one for the cluster, whichever executor registered it first

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if (start in ("executing", "long-running") and finish in ("cancelled", "released")
                and isinstance(key, str) and key.startswith("cadenza-")):
            kill([key])


def attempt(owner: str, call_id: str, payload: bytes, module: str | None,
            task: ref.TaskRef | None, logs: Logs | None = None,
            isolation: str = "processes", limit: tuple[str, int, float] | None = None,
            ) -> tuple[str, Any, Piece | None]:
    """Run one call in ``owner``'s pool here (or in this thread): ``("reply", bytes, piece)``
    as the processes executor's worker answers, ``("crashed", exitcode, piece)`` or
    ``("killed", exitcode, piece)``, or ``("timeout", limit, piece)`` when the call ran past
    ``limit`` (task, attempt, seconds), counted from now, and its child was killed; ``piece``:
    the end of a log written here, not sent yet.
    ``module`` (the function's) and the pipeline of ``task`` are loaded here first, once per
    worker, so that children forked from now on have them: a child forked before loads what
    it lacks once."""
    with _loading:
        if module and module not in sys.modules:
            with contextlib.suppress(Exception):  # the child meets it again, and reports it
                importlib.import_module(module)
        if task is not None:
            ref.preload(task)
    log = _log_here(call_id, logs)
    with _lock:  # _kill sees the call in a pool, or leaves its tombstone
        if call_id in _tombstones:
            del _tombstones[call_id]
            return "killed", None, None
        if log is not None and logs is not None:
            _tail(call_id, _Tail(log, logs.topic, _worker()))
        if isolation == "threads":
            _threads.add(call_id)
        else:
            pool = _pools.get(owner) or _start(owner)
            future = pool.submit(_run_logged, (payload, log))
            _running[call_id] = future
            _busy[owner] = _busy.get(owner, 0) + 1
    if isolation == "threads":
        try:
            return "reply", _run_logged((payload, log)), _last_piece(call_id)
        finally:
            with _lock:
                _threads.discard(call_id)
    try:
        return "reply", future.result(limit[2] if limit else None), _last_piece(call_id)
    except TimeoutError:  # past its timeout: killed here, as a kill from the runner would
        if limit is None:
            raise
        kill([call_id])
        try:
            return "reply", future.result(), _last_piece(call_id)  # it ended as time ran out
        except (WorkerCrashedError, CancelledError):
            return "timeout", limit, _last_piece(call_id)
    except CancelledError:  # killed while it waited for a child: it never ran
        return "killed", None, _last_piece(call_id)
    except WorkerCrashedError as exc:
        return ("killed" if call_id in _stopped else "crashed"), exc.exitcode, \
            _last_piece(call_id)
    finally:
        with _lock:
            del _running[call_id]
            _stopped.discard(call_id)
            if owner in _busy:  # else close() came first
                _busy[owner] -= 1
                _used[owner] = time.monotonic()


def _run_logged(arg: tuple[bytes, str | None]) -> bytes:
    """In the child (or thread): run the call, with its attempt log at ``path`` if given."""
    return _run(*arg)


def _log_here(call_id: str, logs: Logs | None) -> str | None:
    """A log file of this worker's for the call, when it does not see the runner's files."""
    if logs is None:
        return None
    seen = _sees.get(logs.probe)
    if seen is None:
        seen = _sees[logs.probe] = os.path.exists(logs.probe)
    if seen:
        return None
    return os.path.join(tempfile.gettempdir(), f"cadenza-logs-{os.getuid()}", f"{call_id}.log")


def _worker() -> Any:
    from distributed import get_worker

    return get_worker()


def _tail(call_id: str, tail: _Tail) -> None:
    """Send the log at ``tail.path`` home in pieces while the call runs (``_lock`` held)."""
    global _tailer
    _tails[call_id] = tail
    if _tailer is None:
        _tailer = threading.Thread(target=_send_pieces, name="cadenza-log-tailer", daemon=True)
        _tailer.start()


def _send_pieces() -> None:
    while True:
        time.sleep(_TAIL_EVERY)
        with _lock:
            tails = list(_tails.items())
        for call_id, tail in tails:
            with contextlib.suppress(Exception):  # a log is best effort: never the call's end
                with _lock:  # not while _last_piece reads it
                    piece = _read_from(tail) if call_id in _tails else None
                if piece is not None:
                    tail.worker.log_event(tail.topic, {"call": call_id, "offset": piece[0],
                                                       "data": piece[1]})


def _read_from(tail: _Tail) -> Piece | None:
    """What the log holds past what was sent, if anything (whole lines only, unless long)."""
    try:
        with open(tail.path, "rb") as handle:
            handle.seek(tail.sent)
            data = handle.read()
    except FileNotFoundError:  # nothing printed yet
        return None
    if not data:
        return None
    offset = tail.sent
    tail.sent += len(data)
    return offset, data


def _last_piece(call_id: str) -> Piece | None:
    """Stop sending the call's log home; what it holds that was not sent. Removes it here."""
    with _lock:
        tail = _tails.pop(call_id, None)
        if tail is None:
            return None
        piece = _read_from(tail)
    for path in (tail.path, tail.path[:-len(".log")] + ".jsonl"):
        with contextlib.suppress(OSError):
            os.unlink(path)
    return piece


def kill(call_ids: list[str]) -> list[str]:
    """SIGKILL the children running these calls here (the pool replaces them), and remember
    the others so that they never start here; the calls found here. A call running in a
    Dask thread (isolation="threads") is found, but runs on to its end."""
    found = []
    with _lock:
        for call_id in call_ids:
            if call_id in _threads:  # runs in a Dask thread: nothing here can stop it
                found.append(call_id)
                continue
            future = _running.get(call_id)
            if future is None:
                _tombstones[call_id] = None
                continue
            for pool in _pools.values():
                if pool.kill(future):
                    _stopped.add(call_id)
                    break
            found.append(call_id)
        while len(_tombstones) > _TOMBSTONES:
            del _tombstones[next(iter(_tombstones))]
    return found


def close(owner: str) -> None:
    """Stop ``owner``'s pool here, once its calls have ended: its processes exit."""
    with _lock:
        pool = _pools.pop(owner, None)
        _busy.pop(owner, None)
        _used.pop(owner, None)
    if pool is not None:
        pool.shutdown(wait=True)


def _close_all() -> None:
    for owner in list(_pools):
        close(owner)


def _reap_idle() -> None:
    """Close the pools that ran nothing for ``_IDLE`` seconds: their runner may have died."""
    while True:
        time.sleep(_IDLE / 10)
        now = time.monotonic()
        with _lock:
            idle = [owner for owner in _pools
                    if not _busy.get(owner) and now - _used.get(owner, now) > _IDLE]
        for owner in idle:
            close(owner)


def _start(owner: str) -> ProcessExecutor:
    """``owner``'s pool, sized to this worker's threads (with ``_lock`` held)."""
    global _finalizer, _reaper
    from distributed import get_worker

    # A Dask worker is a daemonic process, which multiprocessing forbids to have children;
    # its pool is the point, and is stopped before the worker exits (the finalizer below).
    multiprocessing.current_process().daemon = False
    if _finalizer is None:  # runs before multiprocessing joins the worker's children at exit
        _finalizer = util.Finalize(None, _close_all, exitpriority=100)
    if _reaper is None:
        _reaper = threading.Thread(target=_reap_idle, name="cadenza-pool-reaper", daemon=True)
        _reaper.start()
    pool = ProcessExecutor(max_workers=get_worker().state.nthreads)
    _pools[owner] = pool
    _used[owner] = time.monotonic()
    return pool
