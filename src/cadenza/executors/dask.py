"""Run calls on a Dask cluster, each in a warm process of a pool its Dask worker forked.

A call travels pickled (by reference, as with the processes executor, so the workers must be
able to import what it names) to a Dask task that hands it to a free child of this executor's
pool on that worker (``_dask_pool``: one child per worker thread, forked once) and waits:
``kill`` SIGKILLs that child, which Dask's own cancel cannot do to a running task, and the pool
forks another; a call that ends its own process (a segfault, ``os._exit``, the out-of-memory
killer) ends only its child, while the Dask worker lives on. The children die with their
worker (the parent-death signal), so a worker that dies takes its calls with it: that is
``KilledWorker``, reported as a crashed attempt, as is a child's own death. ``shutdown`` stops
the executor's pools.

Each call's answer is awaited on the Dask client's own event-loop thread, which settles the
call's future there (no thread of ours in between), and its Dask future is released as soon
as it is read: Dask recomputes a finished future that the client still holds when its worker
dies. A cluster this executor starts sets
``allowed-failures`` to 0, so that one Dask execution is one cadenza attempt; on a cluster
given by address that allows more, it warns: Dask may then run an attempt again on its own.

A task travels by reference (executors/ref.py): a ``TaskRef`` that each worker process loads
once with the loader ``cadenza run`` uses, so the workers need the pipeline's file where the
runner has it (or its module importable), the same version: a worker with another fails the
attempt, saying so. ``ship="value"`` sends the functions pickled by value instead, for
clusters without the code.

A task's ``resources=`` go to Dask's: it runs only on a worker started with them, and a task
asking for what no worker has fails at once rather than wait forever.

A task's timeout counts from when its attempt starts on a worker: the Dask task that waits for
the child kills it at the limit and answers ``timeout`` (``times_out``: the run loop sets no
deadline of its own, which would count the wait for a thread too).

``isolation="threads"`` runs each attempt in its Dask worker's thread instead, for clusters
that cannot fork: a kill (timeout, cancel) ends the attempt for the run and frees its place
in flight, but its body may run on, holding that Dask thread, to its end; a crash takes the
Dask worker with it (``KilledWorker``: a crashed attempt).

What a task prints reaches the runner's attempt log while it runs: written there by the
worker when it sees the runner's folder (a probe file the executor leaves there tells it),
else sent home in pieces as Dask events every half second (``_dask_pool``), which this
executor writes into the runner's file at their offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pickle
import socket
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

try:
    import dask
    from distributed import Client, LocalCluster
except ImportError as error:  # pragma: no cover - shown to whoever lacks the extra
    raise ImportError(
        "The dask executor needs dask.distributed, which is not installed. Install it with: "
        "pip install 'cadenza[dask]'"
    ) from error

from cadenza._files import file_mode, make_folders
from cadenza.engine.attempt import Call
from cadenza.exceptions import (
    CadenzaError,
    InvalidOptionError,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from cadenza.executors import _dask_pool, ref
from cadenza.executors.processes import _describe_exit, _killed, _settle

T = TypeVar("T")

_ALLOWED_FAILURES = "distributed.scheduler.allowed-failures"
_CONNECT = 5.0  # seconds to reach a scheduler's port


@dataclass(eq=False)
class _Call:
    id: str
    dask: Any  # its distributed.Future (whose methods are not typed)


class DaskExecutor:
    """Calls on a Dask cluster: a ``LocalCluster`` of ``n_workers`` worker processes that it
    starts and stops, or the cluster at ``address``, or the one behind ``client`` (left open
    at shutdown). ``max_workers`` (calls in flight) is four per Dask thread, at least 16, so
    a worker never idles while the client hears of a result; the cluster's threads run them.
    ``ship``: tasks travel by ``"reference"`` (the workers load the pipeline's file) or by
    ``"value"`` (pickled whole with cloudpickle: the workers need only its imports).
    ``isolation``: each attempt runs in a forked child of its worker, which a kill ends
    (``"processes"``), or in the worker's thread (``"threads"``), which nothing can stop.
    """

    in_process = False
    """Calls run in other processes: the run loop sends and receives values as bytes."""

    def __init__(self, client: Any = None, *, address: str | None = None,
                 n_workers: int = 2, threads_per_worker: int = 1,
                 max_workers: int | None = None,
                 ship: Literal["reference", "value"] = "reference",
                 isolation: Literal["processes", "threads"] = "processes") -> None:
        if isolation not in ("processes", "threads"):
            raise InvalidOptionError(
                f"isolation={isolation!r} is invalid: give 'processes' (each attempt in a "
                "child process a kill ends) or 'threads' (in the Dask worker's thread).",
                option="isolation", value=isolation,
            )
        self.isolation = isolation
        self.stops_calls = isolation == "processes"
        """Whether a kill stops the call's body: not in a Dask thread."""
        self.times_out = isolation == "processes"
        """Whether a worker stops an attempt at its timeout, counted from when the attempt
        starts there (not while it waits for a thread): the run loop then sets no deadline."""
        if ship not in ("reference", "value"):
            raise InvalidOptionError(
                f"ship={ship!r} is invalid: give 'reference' (the workers load the pipeline's "
                "file) or 'value' (the code travels with each task).", option="ship", value=ship,
            )
        self.ship = ship
        if client is not None and address is not None:
            raise InvalidOptionError(
                f"Give a Dask client or an address, not both (address={address!r}).",
                option="address", value=address,
            )
        if n_workers < 1 or threads_per_worker < 1:
            raise InvalidOptionError(
                f"n_workers={n_workers!r}, threads_per_worker={threads_per_worker!r} is "
                "invalid: give 1 or more of each.", option="n_workers", value=n_workers,
            )
        self._cluster: Any = None  # a LocalCluster this executor started
        self._owns_client = client is None
        if client is None and address is None:
            with dask.config.set({_ALLOWED_FAILURES: 0}):
                self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=n_workers, threads_per_worker=threads_per_worker,
                    processes=True,
                    # a free port for the scheduler's HTTP server: with None it still takes
                    # 8787, and a second cluster on this host warns that 8787 is in use
                    dashboard_address="127.0.0.1:0",
                )
            client = Client(self._cluster, set_as_default=False)  # type: ignore[no-untyped-call]
        elif client is None:
            assert address is not None
            client = _client_at(address)
        self._client: Any = client  # distributed's methods are not typed
        self.threads = sum(client.nthreads().values())
        """The cluster's threads when this executor started: calls that run at once."""
        self.max_workers = max_workers or max(4 * self.threads, 16)
        self.allowed_failures = _allowed_failures_of(client)
        """Times Dask itself runs a task again after its worker died: 0 on clusters it starts."""
        if self.allowed_failures > 0:
            warnings.warn(
                f"The Dask cluster at {client.scheduler.address!r} runs a task again when its "
                f"worker dies (distributed.scheduler.allowed-failures={self.allowed_failures}), "
                "so a task that kills its worker may run more times than its retries allow. "
                "Set it to 0 on the scheduler.", UserWarning, stacklevel=2,
            )
        client.register_plugin(_dask_pool.PoolPlugin())  # kills the calls of a runner that died
        self._lock = threading.Lock()
        self._placeable: set[tuple[tuple[str, float], ...]] = set()  # resources a worker has
        self._calls: dict[Future[Any], _Call] = {}
        self._closing = self._closed = False
        self._token = f"cadenza-{uuid.uuid4().hex}"  # names its calls and its pools on workers
        self._ids = itertools.count()
        self._topic = f"{self._token}-logs"  # the pieces of logs written on other hosts
        self._logs: dict[str, tuple[str, Path]] = {}  # call id -> its attempt log, its home
        self._probes: dict[Path, _dask_pool.Logs] = {}  # home -> where its calls' logs go
        client.subscribe_topic(self._topic, self._piece)
        # Results are fetched straight from the workers where the client was told to, or the
        # cluster is a LocalCluster (whose workers this host reaches): not via the scheduler.
        direct = client.direct_to_workers
        self._direct = bool(direct if direct is not None
                            else isinstance(getattr(client, "cluster", None), LocalCluster))

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future: Future[T] = Future()
        task = logs = limit = None
        resources = args[0].resources if args and isinstance(args[0], Call) else None
        try:
            if resources:
                self._check_resources(args[0].task, resources)
            if args and isinstance(args[0], Call):  # a task attempt: its code as ship says
                if self.ship == "value":
                    ref.by_value(args[0])
                else:
                    task = ref.by_reference(args[0])
            if self.ship == "value":
                payload = ref.dumps_by_value((fn, args))
            else:
                payload = pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL)
        except CadenzaError as exc:  # one line for the attempt's error
            future.set_exception(exc)
            return future
        except Exception as exc:
            error = SerializationError(
                f"The call {fn!r} could not be pickled to send to a Dask worker: {exc}. "
                "Define the function at module level and pass picklable arguments."
            )
            error.__cause__ = exc
            future.set_exception(error)
            return future
        future.set_running_or_notify_cancel()  # Dask queues it: from here only kill stops it
        with self._lock:
            if self._closing:
                raise RuntimeError(
                    "This DaskExecutor has been shut down; create a new one to submit calls."
                )
            call_id = f"{self._token}-{next(self._ids)}"  # unique on the scheduler
            if args and isinstance(args[0], Call):
                logs = self._probes.get(args[0].home) or self._probe(args[0].home)
                self._logs[call_id] = (args[0].log_path, args[0].home)
                if args[0].timeout is not None and self.times_out:
                    limit = (args[0].task, args[0].attempt, args[0].timeout)
            dask_future = self._client.submit(_dask_pool.attempt, self._token, call_id,
                                              payload, getattr(fn, "__module__", None), task,
                                              logs, self.isolation, limit, key=call_id,
                                              pure=False,
                                              resources=dict(resources) if resources else None)
            self._calls[future] = _Call(call_id, dask_future)
        self._client.loop.add_callback(self._settle_when_done, future, dask_future)
        return future

    def kill(self, future: Future[Any]) -> bool:
        return bool(self._kill([future]))

    def kill_all(self, futures: Iterable[Future[Any]]) -> list[Future[Any]]:
        """Kill these calls in one step (none that waits starts in a thread another frees);
        return those it stopped (not those that had finished)."""
        return self._kill(list(futures))

    def _probe(self, home: Path) -> _dask_pool.Logs:
        """Leave a file in ``home`` by which a worker tells that it sees this runner's files
        (with ``_lock`` held): there it writes attempt logs itself, else sends them here."""
        probe = home / f".{self._token}.probe"
        with contextlib.suppress(OSError):  # none: every worker sends its logs here
            make_folders(home, home)
            probe.touch()
        logs = self._probes[home] = _dask_pool.Logs(str(probe), self._topic)
        return logs

    def _piece(self, event: tuple[float, dict[str, Any]]) -> None:
        """The client's thread: a piece of a log that a worker wrote on its own host."""
        message = event[1]
        self._write(message["call"], (message["offset"], message["data"]))

    def _write(self, call_id: str, piece: _dask_pool.Piece | None) -> None:
        """Write ``piece`` into the runner's log file of the call, at its offset."""
        with self._lock:
            where = self._logs.get(call_id)
        if piece is None or where is None:
            return
        path, home = where
        with contextlib.suppress(OSError):  # no log is worth a run
            make_folders(Path(path).parent, home)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, file_mode(home))
            try:
                os.pwrite(fd, piece[1], piece[0])
            finally:
                os.close(fd)

    def _check_resources(self, task: str, resources: Mapping[str, float]) -> None:
        """Refuse a call no worker has the resources for: Dask would hold it forever."""
        wanted = tuple(sorted(resources.items()))
        if wanted in self._placeable:
            return
        workers = self._client.scheduler_info(n_workers=-1)["workers"].values()
        if not any(all(w.get("resources", {}).get(k, 0) >= v for k, v in wanted)
                   for w in workers):
            held = sorted({f"{k}={v:g}" for w in workers
                           for k, v in w.get("resources", {}).items()})
            raise CadenzaError(  # retried per the task's policy: workers may join meanwhile
                f"Task {task!r} asks for resources {dict(resources)!r}, which no worker of the "
                f"Dask cluster at {self._client.scheduler.address!r} has (they have: "
                f"{', '.join(held) or 'none'}). Start workers with them (dask worker ... "
                "--resources 'GPU=1'), or drop resources= from the task."
            )
        self._placeable.add(wanted)

    def _kill(self, futures: list[Future[Any]]) -> list[Future[Any]]:
        """Kill these calls at once: each worker, in one step, SIGKILLs the children running
        any of them and remembers the rest, so that none starts in a thread the kill frees."""
        with self._lock:
            calls = {f: c for f in futures if (c := self._calls.pop(f, None)) and not f.done()}
        if not calls:
            return []
        if self._client.asynchronous:  # a done-callback, on the client's thread: no waiting
            self._client.loop.add_callback(self._stop, list(calls.values()))
        else:
            self._client.sync(self._stop, list(calls.values()))
        for future in calls:
            _complete(future, _killed("it was killed"))
        return list(calls)

    async def _stop(self, calls: list[_Call]) -> None:
        """The client's thread: SIGKILL the children running ``calls``; cancel in Dask those
        that no worker was running yet (still waiting for a thread: Dask drops them)."""
        ran_on = await self._client.run(_dask_pool.kill, [c.id for c in calls])
        ran = set().union(*ran_on.values())
        if waiting := [call.dask for call in calls if call.id not in ran]:
            await self._client.cancel(waiting)

    def shutdown(self, wait: bool = True) -> None:
        if self._client.asynchronous:  # a done-callback, on the client's thread: no waiting
            threading.Thread(target=self.shutdown, args=(wait,), name="cadenza-dask-shutdown",
                             daemon=True).start()
            return
        with self._lock:
            if self._closing:
                return
            self._closing = True
            pending = list(self._calls)
        if wait:
            wait_for(pending)
        else:
            self._kill(pending)
        with contextlib.suppress(Exception):  # a worker gone meanwhile took its pool with it
            self._client.run(_dask_pool.close, self._token)
        with contextlib.suppress(Exception):
            self._client.unsubscribe_topic(self._topic)
        for logs in self._probes.values():
            with contextlib.suppress(OSError):
                os.unlink(logs.probe)
        if self._owns_client:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    async def _settle_when_done(self, future: Future[Any], dask_future: Any) -> None:
        """The client's thread: settle ``future`` once its Dask task has ended and its answer
        is here (Dask gathers the answers that finish together in one request), then release
        the Dask future. Waiting here, on the client's own thread, saves each call two hops
        between threads, the dearest part of the runner's work per call."""
        try:
            try:
                answer = await self._client.gather(dask_future, direct=self._direct,
                                                   asynchronous=True)
            except asyncio.CancelledError:  # Dask's own cancel, or the client lost its cluster
                _complete(future, _killed("it was cancelled in Dask"))
            except Exception as exc:
                _complete(future, _dask_error(exc))
            else:
                kind, value, piece = answer
                self._write(dask_future.key, piece)  # the log's end, before the attempt's
                if not future.done():  # else killed meanwhile
                    _answer(future, kind, value)
        except BaseException as exc:  # a bug: no call may wait forever for it
            _complete(future, exc)
            raise
        finally:
            with self._lock:
                self._calls.pop(future, None)
                self._logs.pop(dask_future.key, None)
            dask_future.release()


def _answer(future: Future[Any], kind: str, value: Any) -> None:
    """Settle ``future`` from what its Dask task returned (_dask_pool.attempt)."""
    if kind == "reply":
        with contextlib.suppress(InvalidStateError):
            _settle(future, value)
    elif kind == "killed":
        _complete(future, _killed("it was killed"))
    elif kind == "timeout":
        task, attempt, seconds = value
        _complete(future, TaskTimeoutError(
            f"Task {task!r} ran past its timeout of {seconds:g}s on attempt {attempt} (counted "
            "from when it started on its Dask worker) and was stopped.", task=task,
            attempt=attempt,
        ))
    else:
        _complete(future, WorkerCrashedError(
            f"The process running this task on a Dask worker {_describe_exit(value)}. A "
            "crash in native code, os._exit() or the out-of-memory killer can do this; "
            "the Dask worker lives on.", exitcode=value,
        ))


def _client_at(address: str) -> Any:
    """A client of the scheduler at ``address``; a CadenzaError in one line if there is none.
    A TCP address is tried first with a plain connection: refused at once, where Dask's
    client would retry for its whole connect timeout (30 s) and leave a half-made client."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        get_backend(scheme)  # an unknown scheme: a ValueError here, not in a half-made client
        if scheme in ("tcp", "tls"):
            socket.create_connection(parse_host_port(location), timeout=_CONNECT).close()
        return Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, ValueError, TimeoutError) as exc:
        raise CadenzaError(
            f"Cannot reach a Dask scheduler at {address!r}: {exc}. Check the address (like "
            "tcp://host:8786) and that the scheduler is running."
        ) from None


def _allowed_failures_of(client: Any) -> int:
    try:  # what the scheduler uses, if it can import cadenza
        return int(client.run_on_scheduler(_allowed_failures))
    except Exception:  # else its configuration, most likely what it was started with
        return int(client.run_on_scheduler(dask.config.get, _ALLOWED_FAILURES))


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)


def _complete(future: Future[Any], error: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):  # a kill and a reply may cross
        future.set_exception(error)


def _dask_error(error: BaseException | None) -> BaseException:
    if type(error).__name__ == "KilledWorker":
        crashed = WorkerCrashedError(
            f"The Dask worker running this task died: {error}. Its process may have been "
            "killed (the out-of-memory killer, say) or lost its connection."
        )
        crashed.__cause__ = error
        return crashed
    return error if error is not None else RuntimeError("The Dask task failed without an error.")
