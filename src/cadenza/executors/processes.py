"""Run calls in a warm pool of worker processes, where a crash or a kill costs only its own call."""

from __future__ import annotations

import atexit
import contextlib
import copyreg
import io
import mmap
import multiprocessing
import os
import pickle
import signal
import struct
import threading
import traceback
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, TypeVar

from cadenza.exceptions import InvalidOptionError, SerializationError, WorkerCrashedError
from cadenza.executors import _parent_death

T = TypeVar("T")

_STOP = b""  # an empty message tells an idle worker to exit
_TAKEN = struct.Struct("Q")  # how many calls a worker has taken, in memory it shares with us
_RESENDS = 3  # times a call goes to a new worker when each died before taking it
_STOP_GRACE = 5.0  # seconds a stopped worker gets to exit before it is killed
_Outcome = bytes | BaseException  # a pickled reply from a worker, or an error made here

# The runner-side pipe ends of every executor's workers. A forked worker closes all of them, so
# that when the runner dies each worker reads EOF and exits instead of lingering.
_runner_ends: weakref.WeakSet[Connection] = weakref.WeakSet()
_runner_ends_lock = threading.Lock()


@dataclass(eq=False)
class _Call:
    future: Future[Any]
    payload: bytes  # pickled (fn, args); kept until it ends, to resend if need be
    started: bool = False  # set_running_or_notify_cancel() has been called
    resent: int = 0  # times its worker died before taking it


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    taken: mmap.mmap  # _TAKEN, counted by the worker as it takes each call, before running it
    sent: int = 0  # calls sent to it
    call: _Call | None = None  # what it is running; None when idle or killed
    listening: bool = True  # False once conn hit EOF: the process sentinel reports the exit
    killed: bool = False


class _RemoteTraceback(Exception):
    """The ``__cause__`` of an exception raised in a worker: where it was raised, as text."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


class ProcessExecutor:
    """A warm pool of ``max_workers`` processes; ``kill()`` stops a call by killing its worker.

    One dispatcher thread waits on every worker's pipe and process sentinel, completes futures
    and replaces workers that die. All pool state is guarded by one lock; futures are completed
    and cancelled outside it, since that runs the callers' callbacks.

    A worker's death is charged to the call it had taken, never to one sent after its last
    reply; and workers die with the runner, however it dies (see ``_die_with_runner``).
    """

    in_process = False
    """Calls run in worker processes: the run loop sends and receives values as bytes."""

    def __init__(self, max_workers: int = 2) -> None:
        if max_workers < 1:
            raise InvalidOptionError(
                f"max_workers={max_workers!r} is invalid: give 1 or more.",
                option="max_workers", value=max_workers,
            )
        self.max_workers = max_workers
        _parent_death.prepare()
        # fork, not spawn: pipeline modules are loaded from file paths and registered in
        # sys.modules, so a forked worker already has them and ``fn`` pickles by reference.
        self._context = multiprocessing.get_context("fork")
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._idle: deque[_Worker] = deque()
        self._queue: deque[_Call] = deque()
        self._running: dict[Future[Any], _Worker] = {}
        self._closing = False
        self._wake_reader, self._wake_writer = self._context.Pipe(duplex=False)
        # Nothing is ever sent on this pipe: each worker holds the read end and the runner the
        # only write end, so a worker sees EOF once the runner is gone, however it died.
        self._life_reader, self._life_writer = self._context.Pipe(duplex=False)
        with _runner_ends_lock:
            _runner_ends.add(self._life_writer)
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        # Every worker is forked by the dispatcher thread: Linux sends a worker its parent-death
        # signal when the *thread* that forked it ends, and the dispatcher outlives them all.
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="cadenza-process-dispatcher", daemon=True
        )
        self._dispatcher.start()
        self._started.wait()
        if self._start_error is not None:
            self._dispatcher.join()
            raise self._start_error
        # Registered after multiprocessing's own exit hook, so it runs first: that hook joins
        # non-daemon children, which would wait forever on idle workers.
        atexit.register(self._at_exit)

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            payload = pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            error = SerializationError(
                f"The call {fn!r} could not be pickled to send to a worker process: {exc}. "
                "Define the function at module level and pass picklable arguments, "
                "or use the threads executor."
            )
            error.__cause__ = exc
            future.set_exception(error)
            return future
        with self._lock:
            if self._closing:
                raise RuntimeError(
                    "This ProcessExecutor has been shut down; create a new one to submit calls."
                )
            self._queue.append(_Call(future, payload))
            self._fill()
        return future

    def kill(self, future: Future[Any]) -> bool:
        done: list[tuple[Future[Any], _Outcome]] = []
        killed = dropped = False
        with self._lock:
            worker = self._running.get(future)
            if worker is not None:
                while worker.listening and worker.call is not None and worker.conn.poll():
                    self._receive(worker, done)  # its note that it started, or its reply
                if worker.call is not None and worker.listening:  # else its reply or death stands
                    self._detach(worker)
                    killed = True
            else:
                call = next((c for c in self._queue if c.future is future), None)
                if call is not None:
                    self._queue.remove(call)
                    dropped = True
        for settled, outcome in done:
            _settle(settled, outcome)
        if killed or (dropped and not _cancel(future)):
            _fail_if_pending(future, _killed("it was killed"))
        return killed or dropped

    def shutdown(self, wait: bool = True) -> None:
        killed: list[Future[Any]] = []
        dropped: list[_Call] = []
        with self._lock:
            self._closing = True
            if not wait:
                dropped = list(self._queue)
                self._queue.clear()
                killed = [self._detach(worker) for worker in list(self._running.values())]
            if not self._wake_writer.closed:
                self._wake_writer.send_bytes(b"wake")
        for call in dropped:
            if not _cancel(call.future):
                _fail_if_pending(call.future, _killed("the executor was shut down"))
        for future in killed:
            _fail_if_pending(future, _killed("the executor was shut down without waiting"))
        if threading.current_thread() is not self._dispatcher:  # a done-callback may call this
            self._dispatcher.join()
        atexit.unregister(self._at_exit)

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=exc_type is None)

    def _at_exit(self) -> None:
        self.shutdown(wait=False)

    # -- with the lock held ------------------------------------------------------------------

    def _spawn(self) -> None:
        """Start one worker (dispatcher thread only). The lock keeps forks from interleaving
        with pipe bookkeeping."""
        conn, child_conn = self._context.Pipe()
        taken = mmap.mmap(-1, _TAKEN.size)  # shared with the child, which inherits the mapping
        with _runner_ends_lock:  # held across the fork, so the child's list is complete
            _runner_ends.add(conn)
            inherited = [self._wake_reader, self._wake_writer, *_runner_ends]
            process = self._context.Process(
                target=_worker_main,
                args=(child_conn, inherited, self._life_reader, os.getpid(), taken),
                name="cadenza-worker",
            )
            with warnings.catch_warnings():
                # Python 3.12+ warns on fork() with threads running. Fork is the point here
                # (see __init__), and the child only runs _worker_main, which takes no lock.
                warnings.filterwarnings("ignore", "This process .* is multi-threaded")
                process.start()
        child_conn.close()
        worker = _Worker(process, conn, taken)
        self._workers.append(worker)
        self._idle.append(worker)

    def _fill(self) -> None:
        """Hand queued calls to idle workers."""
        while self._queue and self._idle:
            call = self._queue.popleft()
            if not call.started:
                if not call.future.set_running_or_notify_cancel():
                    continue  # its caller cancelled it while it waited
                call.started = True
            worker = self._idle.popleft()
            try:
                worker.conn.send_bytes(call.payload)
            except OSError:  # the worker died while idle; its sentinel will report that
                self._queue.appendleft(call)
                continue
            worker.call = call
            worker.sent += 1
            self._running[call.future] = worker

    def _detach(self, worker: _Worker) -> Future[Any]:
        """SIGKILL a busy worker and take its call's future; the dispatcher replaces it."""
        assert worker.call is not None
        future = worker.call.future
        del self._running[future]
        worker.call = None
        worker.killed = True
        worker.process.kill()
        return future

    def _receive(self, worker: _Worker, done: list[tuple[Future[Any], _Outcome]]) -> None:
        try:
            reply = worker.conn.recv_bytes()
        except (EOFError, OSError):
            worker.listening = False
            return
        call = worker.call
        if call is None:  # killed after it replied; kill() already settled the future
            return
        worker.call = None
        del self._running[call.future]
        done.append((call.future, reply))
        self._idle.append(worker)

    def _reap(self, worker: _Worker, done: list[tuple[Future[Any], _Outcome]]) -> None:
        """Its process has exited: collect a last reply, report a crash, start a replacement."""
        while worker.listening and worker.conn.poll():
            self._receive(worker, done)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        self._workers.remove(worker)
        worker.process.join()  # its sentinel is ready, so this returns at once
        exitcode = worker.process.exitcode
        worker.process.close()
        worker.conn.close()
        # Charge its death to the call it had taken, not to one sent after its last reply that
        # it never read: that call has not run, so it goes to the next free worker.
        taken = _TAKEN.unpack_from(worker.taken)[0] == worker.sent
        worker.taken.close()
        call = worker.call
        if call is not None:
            del self._running[call.future]
            how = _describe_exit(exitcode)
            if not taken and call.resent < _RESENDS:
                call.resent += 1
                self._queue.appendleft(call)
            elif not taken:
                done.append((call.future, WorkerCrashedError(
                    f"{call.resent + 1} worker processes in a row {how} before they could "
                    "start this task, so it was not run. Check the machine's memory and "
                    "process limits.", exitcode=exitcode,
                )))
            else:
                done.append((call.future, WorkerCrashedError(
                    f"The worker process running this task {how}. A crash in native code, "
                    "os._exit() or the out-of-memory killer can do this; a new worker has "
                    "started.", exitcode=exitcode,
                )))
        if not self._closing or self._queue:
            self._spawn()

    # -- the dispatcher thread ---------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            with self._lock:
                for _ in range(self.max_workers):
                    self._spawn()
        except BaseException as exc:
            _stop_workers(self._workers, kill=True)
            self._workers, self._idle = [], deque()
            for end in (self._wake_reader, self._wake_writer, self._life_reader,
                        self._life_writer):
                end.close()
            self._start_error = exc
            return
        finally:
            self._started.set()
        try:
            self._dispatch_until_closed()
        except BaseException as exc:
            self._abandon(exc)
            raise

    def _dispatch_until_closed(self) -> None:
        while True:
            with self._lock:
                if self._closing and not self._queue and not self._running:
                    workers, self._workers = self._workers, []
                    self._idle.clear()
                    self._wake_reader.close()
                    self._wake_writer.close()
                    break
                owners: dict[Connection | int, _Worker] = {}
                for worker in self._workers:
                    owners[worker.process.sentinel] = worker
                    if worker.listening:
                        owners[worker.conn] = worker
            ready = wait([self._wake_reader, *owners])
            done: list[tuple[Future[Any], _Outcome]] = []
            try:
                with self._lock:
                    while self._wake_reader.poll():
                        self._wake_reader.recv_bytes()
                    for obj in ready:  # replies first, so one sent just before death counts
                        owner = owners.get(obj) if isinstance(obj, Connection) else None
                        # poll(): kill() may have read what woke us
                        while owner is not None and owner.listening and owner.conn.poll():
                            self._receive(owner, done)
                    for obj in ready:
                        if isinstance(obj, int):
                            self._reap(owners[obj], done)
                    self._fill()
            finally:  # even if a replacement could not be forked: these calls are decided
                for future, outcome in done:
                    _settle(future, outcome)
        _stop_workers(workers, kill=False)
        self._life_reader.close()
        self._life_writer.close()

    def _abandon(self, exc: BaseException) -> None:
        """The dispatcher failed (a bug, or fork() failing): fail every call, stop every worker."""
        with self._lock:
            self._closing = True
            calls = [*self._queue, *(w.call for w in self._workers if w.call is not None)]
            workers, self._workers = self._workers, []
            self._queue.clear()
            self._running.clear()
            self._idle.clear()
        _stop_workers(workers, kill=True)
        self._life_reader.close()
        self._life_writer.close()
        for call in calls:
            _fail_if_pending(call.future, WorkerCrashedError(
                f"The process executor's dispatcher failed ({exc!r}), so this task was lost."
            ))


def _stop_workers(workers: list[_Worker], *, kill: bool) -> None:
    """Stop idle (or, with ``kill``, all) workers, wait for them and release their resources."""
    for worker in workers:
        if kill:
            worker.process.kill()
        elif not worker.killed:
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(_STOP)
    for worker in workers:
        worker.process.join(_STOP_GRACE)
        if worker.process.exitcode is None:  # e.g. a task left a non-daemon thread behind
            worker.process.kill()
            worker.process.join()
        worker.process.close()
        worker.conn.close()
        worker.taken.close()


def _cancel(future: Future[Any]) -> bool:
    """Cancel a call taken off the queue, and notify as the executor must, or wait() hangs."""
    if not future.cancel():
        return False
    future.set_running_or_notify_cancel()
    return True


def _fail_if_pending(future: Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _killed(why: str) -> WorkerCrashedError:
    return WorkerCrashedError(
        f"The task was killed because {why}: its worker process got SIGKILL.",
        exitcode=-signal.SIGKILL,
    )


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "died"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"number {-exitcode}"
        return f"died with signal {name} (exit code {exitcode})"
    return f"exited with code {exitcode}"


def _settle(future: Future[Any], outcome: _Outcome) -> None:
    """Complete ``future`` from a worker's reply (dispatcher thread, outside the lock)."""
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
        return
    try:
        ok, value, remote_tb = pickle.loads(outcome)
    except Exception as exc:
        error = SerializationError(f"The reply from a worker process could not be unpickled: {exc}")
        error.__cause__ = exc
        future.set_exception(error)
        return
    if ok:
        future.set_result(value)
        return
    if remote_tb is not None:
        value.__cause__ = _RemoteTraceback(remote_tb)
    future.set_exception(value)


# -- in the worker process -------------------------------------------------------------------


def _worker_main(conn: Connection, inherited: list[Connection], life: Connection,
                 runner: int, counter: mmap.mmap) -> None:
    """Run calls sent over ``conn`` until told to stop or the runner goes away."""
    global _runner_ends_lock
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C hits the whole group; the runner acts
    for other in inherited:
        other.close()  # hold no runner-side pipe ends, so EOF arrives if the runner dies
    _runner_ends.clear()
    _runner_ends_lock = threading.Lock()  # forked while held; a task may build its own pool
    _die_with_runner(runner, life)
    taken = 0
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:
            return
        if message == _STOP:
            return
        try:
            taken += 1
            _TAKEN.pack_into(counter, 0, taken)  # before anything of the call runs: see _reap
            conn.send_bytes(_run(message))
        except OSError:  # the runner is gone
            return


def _die_with_runner(runner: int, life: Connection) -> None:
    """Make this worker end when the runner does, even in the middle of a call: by the
    kernel's parent-death signal where there is one (Linux), else by a thread that waits for
    EOF on ``life`` (slower, and it needs the GIL: a task stuck in C code runs on)."""
    if _parent_death.arm():
        life.close()
    else:
        threading.Thread(target=_watch_runner, args=(life,), name="cadenza-runner-watch",
                         daemon=True).start()
    if os.getppid() != runner:  # the runner died before the signal was armed
        os._exit(1)


def _watch_runner(life: Connection) -> None:
    with contextlib.suppress(OSError, EOFError):
        life.poll(None)  # EOF, once no runner-side end is left: the runner has died
    os.kill(os.getpid(), signal.SIGKILL)


def _run(message: bytes, log_path: str | None = None) -> bytes:
    """Unpickle and run one call; the reply is ``(ok, result or exception, traceback text)``.
    ``log_path``: where the attempt the call is writes its log, instead of the runner's path
    (a Dask worker that does not see the runner's files)."""
    try:
        fn, args = pickle.loads(message)
        if log_path is not None:
            args[0].log_path = log_path
        result = fn(*args)
    except BaseException as exc:  # the caller's future carries it, SystemExit included
        return _dump_error(exc)
    try:
        return pickle.dumps((True, result, None), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        error = SerializationError(
            f"The task returned a {type(result).__name__} that could not be pickled to send "
            f"back from its worker process: {exc}. Return plain data, or use the threads executor."
        )
        error.__cause__ = exc
        return _dump_error(error)


def _dump_error(exc: BaseException) -> bytes:
    tb = "".join(traceback.format_exception(exc))
    try:
        reply = _plain_dumps((False, exc, tb))
        pickle.loads(reply)  # some exceptions pickle but cannot be rebuilt; find out here
        return reply
    except Exception:
        fallback = RuntimeError(
            f"The task raised {exc!r}, which could not be pickled to send back from its "
            f"worker process. Its traceback:\n{tb}"
        )
        return pickle.dumps((False, fallback, None), pickle.HIGHEST_PROTOCOL)


def _plain_dumps(obj: object) -> bytes:
    """Pickle exceptions as pickle itself does, whatever reducers a library registered for them:
    distributed installs tblib's, which rebuild a SystemExit without its code (and ship
    tracebacks), so errors would come back one way from a worker that loaded it and another
    from one that did not."""
    table = {
        kind: reducer for kind, reducer in copyreg.dispatch_table.items()
        if kind is not TracebackType
        and not (isinstance(kind, type) and issubclass(kind, BaseException))
    }
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = table
    pickler.dump(obj)
    return buffer.getvalue()
