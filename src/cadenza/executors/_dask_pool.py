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
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import sys
import threading
import time
from concurrent.futures import CancelledError, Future
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
            task: ref.TaskRef | None) -> tuple[str, Any]:
    """Run one call in ``owner``'s pool here: ``("reply", bytes)`` as the processes executor's
    worker answers, ``("crashed", exitcode)`` or ``("killed", exitcode)``. ``module`` (the
    function's) and the pipeline of ``task`` are loaded here first, once per worker, so that
    children forked from now on have them: a child forked before loads what it lacks once."""
    if module and module not in sys.modules:
        with contextlib.suppress(Exception):  # the child meets the same error, and reports it
            importlib.import_module(module)
    if task is not None:
        ref.preload(task)
    with _lock:  # _kill sees the call in a pool, or leaves its tombstone
        if call_id in _tombstones:
            del _tombstones[call_id]
            return "killed", None
        pool = _pools.get(owner) or _start(owner)
        future = pool.submit(_run, payload)
        _running[call_id] = future
        _busy[owner] = _busy.get(owner, 0) + 1
    try:
        return "reply", future.result()
    except CancelledError:  # killed while it waited for a child: it never ran
        return "killed", None
    except WorkerCrashedError as exc:
        return ("killed" if call_id in _stopped else "crashed"), exc.exitcode
    finally:
        with _lock:
            del _running[call_id]
            _stopped.discard(call_id)
            if owner in _busy:  # else close() came first
                _busy[owner] -= 1
                _used[owner] = time.monotonic()


def kill(call_ids: list[str]) -> list[str]:
    """SIGKILL the children running these calls here (the pool replaces them), and remember
    the others so that they never start here; the calls found here."""
    found = []
    with _lock:
        for call_id in call_ids:
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
