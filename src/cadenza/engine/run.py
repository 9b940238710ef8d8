"""The run loop: ready -> submit -> collect -> transition -> commit, until every task is done.

Only the loop thread touches run state. It holds:

- ``tis``: every task instance of the run by ``(task, map_index)`` (``-1`` for an unmapped
  task, and for the parent of a mapped one), with its state, attempt number, output hash and
  the token of its live submission; a result carrying an older token is late and is dropped;
- ``waiting``: for each task, how many upstream tasks are not done; at zero its trigger rule
  decides whether it runs, is skipped, or is upstream_failed;
- ``ready``: instances waiting for a worker slot; ``retries`` and ``deadlines``: heaps of times;
- ``journal``: the writes since the last commit. Writes are committed in groups, at most
  GROUP_COMMIT after they are made, and always before any task that depends on them starts:
  each queued instance remembers the commit count when it became ready (engine/journal.py
  says which rows may wait longer).

Executors report back through ``future.add_done_callback(queue.put)``; one that offers
``call`` (inline) is called directly, and its result recorded at once.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cadenza.artifacts.serializers import serialize
from cadenza.engine import logs, outputs, reuse
from cadenza.engine.attempt import AttemptResult, Call, run_attempt
from cadenza.engine.cache import CacheIndex, sha256
from cadenza.engine.claim import Claim
from cadenza.engine.gates import Gates
from cadenza.engine.hooks import Callbacks, Hooks
from cadenza.engine.journal import VALUE, Instance, Journal, Key
from cadenza.engine.mapping import MappedTasks
from cadenza.engine.outcomes import classify
from cadenza.engine.records import Records
from cadenza.engine.result import RunResult, build_result
from cadenza.engine.reuse import cache_key, entry_for
from cadenza.engine.rules import TriggerRules
from cadenza.engine.sla import SlaClock
from cadenza.engine.states import (
    RESUMABLE,
    TERMINAL,
    RunState,
    TaskState,
    move_run,
    transition,
)
from cadenza.engine.values import Values
from cadenza.exceptions import CadenzaError, ClaimLostError, TaskTimeoutError
from cadenza.executors import Executor, Killable
from cadenza.graph import Node
from cadenza.pipeline import CheckFunction, Pipeline, TaskFunction, TaskSpec
from cadenza.store.base import (
    AttemptRecord,
    CacheEntry,
    RunRecord,
    SlotHolder,
    TaskInstanceRecord,
)
from cadenza.workspace import Workspace

S = TaskState
# The hot path names states by these constants: each TaskState.X is a class attribute lookup
# of about 130 ns, and a task takes a couple of dozen of them.
PENDING, QUEUED, RUNNING = S.PENDING, S.QUEUED, S.RUNNING
SUCCESS, FAILED, UP_FOR_RETRY = S.SUCCESS, S.FAILED, S.UP_FOR_RETRY
CANCEL_POLL = 0.5
CANCEL_GRACE = 2.0
"""Seconds a cancelled run gives the calls running to end: what ends by then is recorded as
it ended; the rest are killed (processes) or run on, their results ignored (threads)."""
CANCEL_SETTLE = 1.0
"""Seconds to wait for the results of calls that had replied when their kill came."""
TIMEOUT_SETTLE = 0.05
"""Seconds a thread past its deadline may take to finish before it is said to run on."""
SYNC_CHUNK = 1024
ALERT_FLUSH = 5.0
"""Seconds a finishing run waits for its alerts to go out."""
GC_THRESHOLD = 50_000
SLOT_POLL = 0.2
"""Seconds between two asks for a slot of a pool whose slots other runs hold."""


RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,199}\Z")
"""What a run id may hold: it names a folder of logs and appears in URLs, so no ``/``, no
leading dot."""


def new_run_id(pipeline: str, moment: datetime | None = None) -> str:
    """``<pipeline>-<YYYYmmddTHHMMSS>-<6 hex>``: the time is now, or a scheduled run's
    logical date, so ids sort as the runs do; safe in a path and a URL."""
    stamp = (moment or datetime.now(UTC)).astimezone(UTC)
    return f"{pipeline}-{stamp:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


class Runner(TriggerRules, Records, Gates, MappedTasks):
    """One run of a pipeline, from start to finish: the loop below. Mixed in: what runs next
    (trigger rules, branches, selection: engine/rules.py), what an attempt recorded (outputs,
    artifacts, cache entries: engine/records.py), gates (engine/gates.py) and mapped tasks
    (engine/mapping.py); the claim is engine/claim.py's."""

    def __init__(
        self, pipe: Pipeline, workspace: Workspace, executor: Executor, run: RunRecord, *,
        hooks: Iterable[Hooks] = (), selected: set[str] | None = None, force: bool = False,
        cancel: threading.Event | None = None, prior: Iterable[TaskInstanceRecord] = (),
        provided: Mapping[str, Any] | None = None, approve: Iterable[str] = (),
        wait: bool = False, params: Mapping[str, Any] | None = None,
        claim: Claim | None = None, dead: Iterable[AttemptRecord] = (),
        cleared: Iterable[str] = (),
    ) -> None:
        self.pipe, self.graph, self.ws, self.executor = pipe, pipe.graph(), workspace, executor
        self.run, self.hooks, self.force = run, list(hooks), force
        self.cleared = frozenset(cleared)
        """Tasks a person cleared to run again: they run, whatever their cache holds."""
        self.params: Mapping[str, Any] = params if params is not None else run.params
        """The real values; the run record keeps secret ones as ***."""
        self.secret = pipe.secret_params
        if pipe.callbacks:
            self.hooks.append(Callbacks(pipe.callbacks, self._callback_failed))
        self.router = pipe.alert_router()
        if self.router is not None:
            self.hooks.append(self.router)
        self.slas = SlaClock(pipe, self.graph, run)
        """A heap of (epoch deadline, task or None for the whole run) not yet checked."""
        self.selected = selected
        self.cancel = cancel or threading.Event()
        self.tis: dict[Key, Instance] = {}
        self.done: dict[str, TaskState] = {}
        self.waiting: dict[str, int] = {}
        self.branches = frozenset(n.name for n in self.graph if n.spec.kind == "branch")
        self.unchosen: dict[str, frozenset[str]] = {}
        """For each branch that succeeded: its direct downstream tasks it skips."""
        self.remaining: dict[str, int] = {}
        self.ready: list[tuple[int, int, int, int, Instance]] = []
        """A heap: higher priority first, then run order, then item, then arrival."""
        self.arrivals = itertools.count()
        self.rank = {name: i for i, name in enumerate(self.graph.order)}
        self.pool_used: dict[str, int] = dict.fromkeys(pipe.pools, 0)
        self.pool_of: dict[Future[AttemptResult], str] = {}
        self.pool_blocked = False
        """True when every ready task waits for a pool slot: nothing to submit until one frees."""
        self.shared_pools = claim is not None and bool(pipe.pools)
        """Pools count across runs: a pooled task takes a slot in the store before it starts
        (it needs this runner's claim, which the slot is held under)."""
        self.slot_wait: dict[str, float] = {}
        """For each pool whose slots other runs held at the last ask: when to ask again."""
        self.slot_retry: float | None = None
        """When the next ready task waiting for another run's slot asks again (None: none)."""
        self.slots_taken = False
        self.retries: list[tuple[float, Key]] = []
        self.deadlines: list[tuple[float, Key, int]] = []
        self.results: queue.SimpleQueue[tuple[Key, int, Future[AttemptResult]]] = (
            queue.SimpleQueue()
        )
        self.in_flight = 0
        self.abandoned: dict[Future[AttemptResult], str] = {}
        """Calls that ran past their timeout on an executor that cannot stop them: each still
        holds its worker (and pool) slot until it returns. Task label by future."""
        # A synchronous executor has finished each call by the time submit returns: give it a
        # chunk per loop turn, so results are committed in chunks rather than all at the end.
        self.synchronous = bool(getattr(executor, "synchronous", False))
        self.limit = SYNC_CHUNK if self.synchronous else min(
            executor.max_workers, pipe.max_active_tasks or executor.max_workers
        )
        self.direct: Callable[..., AttemptResult] | None = getattr(executor, "call", None)
        """The executor's ``call``, if it has one: run now, without a Future."""
        self.claim = claim
        """This runner's claim on the run: every commit is fenced on it (engine/claim.py)."""
        self.dead = list(dead)
        """Attempts a runner that lost the run left ``running``: closed by the first commit."""
        self.journal = Journal(workspace.store, run.run_id, self.hooks,
                               claim.fence if claim is not None else None)
        self.run_id = run.run_id
        self.next_poll = time.monotonic() + CANCEL_POLL
        self.killable = isinstance(executor, Killable)
        self.times_out = bool(getattr(executor, "times_out", False))
        """The executor stops an attempt at its timeout, counted from when it starts there."""
        self.keep_values = bool(getattr(executor, "in_process", True))
        self.cancelled = False
        self.interval = (run.logical_date, run.interval_start, run.interval_end)
        self._fields = outputs.fields(run.run_id, self.interval, self.params)
        self._paths: dict[str, dict[str, str]] = {}
        """Each task's declared output paths with this run's fields filled in."""
        self.prior = {(t.task, t.map_index): t for t in prior}
        self.provided = dict(provided or {})
        self.approve = set(approve)
        """Gates the caller approves up front (`pipe.run(approve=[...])`, `run --approve`)."""
        self.wait = wait
        """Keep running while gates wait for a person; else end the run `waiting`."""
        self.awaiting: set[str] = set()
        self.values = Values(workspace, self.keep_values)
        self._intact_memo: dict[str, bool] = {}
        self._recorded: set[str] = set()
        """Artifact hashes this run has recorded already: a repeat adds no row."""
        if not RUN_ID.match(run.run_id):  # it becomes a folder name: refuse what could escape
            raise CadenzaError(
                f"Run id {run.run_id!r} cannot be used: a run id is letters, digits and "
                "'_.:+-', starting with a letter, digit or '_'."
            )
        self._log_root = f"{workspace.logs}/{pipe.name}/{run.run_id}"
        self._root, self._home = workspace.root, workspace.home
        self.cache = CacheIndex(workspace.store, pipe.name)
        self.needed = self.graph.needed_outputs(self.selected)
        self.latest: dict[str, CacheEntry] = {}
        """For --only/--from: the newest intact output of each task the selection reads."""
        for task in self.needed:
            spec = self.graph.nodes[task].spec
            intact = (e for e in self.cache.newest(task) if self._reusable(e, spec))
            if (entry := next(intact, None)) is not None:
                self.latest[task] = entry
        missing = sorted(self.needed - set(self.latest) - set(self.provided))
        if missing:
            raise CadenzaError(
                f"Tasks {missing} are not selected to run, and no earlier run stored their "
                "outputs, which the selected tasks need. Select them too, or run the whole "
                f"pipeline {pipe.name!r} once first."
            )

    # -- the loop ---------------------------------------------------------------------------

    def execute(self) -> RunResult:
        logs.install()
        thresholds = gc.get_threshold()
        # The loop allocates many small records that live until the next commit; collecting
        # young objects every 700 allocations would scan them again and again.
        gc.set_threshold(max(thresholds[0], GC_THRESHOLD), *thresholds[1:])
        try:
            self._start()
            while len(self.done) < len(self.graph):
                self._commit()
                if self._cancel_requested():
                    self._drain()
                    self._cancel_all()
                    break
                self._submit_ready()
                if len(self.done) == len(self.graph):
                    break  # a synchronous executor may finish the run inside that call
                if self.abandoned and self._stalled():
                    continue  # ended what could not start; its downstream may settle now
                if not (self.ready or self.in_flight or self.retries):
                    if not self.awaiting:
                        raise CadenzaError(  # a bug in cadenza, never a user's mistake
                            f"Run {self.run.run_id} is stuck: nothing runs, nothing waits, "
                            f"and tasks {sorted(set(self.graph.nodes) - set(self.done))} are "
                            "not done."
                        )
                    if not self.wait:
                        break  # only gates are left: the run ends `waiting`
                self._wait()
                self._check_slas()
            return self._finish()  # still under the raised threshold: it builds many records
        except ClaimLostError:
            self._abandon()  # another runner owns the run now: stop, and write nothing
            raise
        except KeyboardInterrupt:
            self._cancel_all()
            self._finish()
            raise
        finally:
            gc.set_threshold(*thresholds)
            logs.uninstall()
            if self.slots_taken:
                self._release_slots()

    def _check_slas(self) -> None:
        for miss in self.slas.missed(lambda task: self.tis[(task, -1)]):
            self._event(miss.task, -1, "sla_missed", deadline=miss.deadline, sla=miss.sla,
                        waiting_on=miss.late[:20])

    def _callback_failed(self, name: str, error: BaseException) -> None:
        self._event(None, -1, "callback_error", callback=name,
                    error=f"{type(error).__name__}: {error}")

    def _wait(self) -> None:
        now = time.monotonic()
        while self.retries and self.retries[0][0] <= now:
            self._queue(self.tis[heapq.heappop(self.retries)[1]])
        while self.deadlines and self.deadlines[0][0] <= now:
            _, key, token = heapq.heappop(self.deadlines)
            self._time_out(self.tis[key], token)
        if self.ready and self.in_flight < self.limit and not self.pool_blocked:
            return
        wake = min([self.next_poll, *(t for t, _ in self.retries[:1]),
                    *(t for t, _, _ in self.deadlines[:1])])
        if self.pool_blocked and self.slot_retry is not None:
            wake = min(wake, self.slot_retry)  # ask the store again for another run's slot
        due = self.journal.due()
        if due is not None:  # wake in time to commit what is waiting
            wake = min(wake, due)
        if (sla := self.slas.next()) is not None:
            wake = min(wake, now + sla - time.time())
        try:
            item = self.results.get(timeout=max(0.0, wake - time.monotonic()))
        except queue.Empty:
            return
        while True:
            self._collect(*item)
            try:
                item = self.results.get_nowait()
            except queue.Empty:
                return

    def _drain_alert_errors(self) -> None:
        errors = self.pipe.delivery_errors
        while errors:
            name, error = errors.popleft()
            self._event(None, -1, "delivery_error", to=name,
                        error=f"{type(error).__name__}: {error}")

    def _commit(self, force: bool = False, *, early: bool = False) -> None:
        """Commit the journal when it is due (``early``: now, for a task about to start;
        ``force``: now and everything, at the end of the run)."""
        self._drain_alert_errors()
        due = self.journal.due()
        if due is not None and (force or early or time.monotonic() >= due):
            self.journal.commit(final=force)
            self.values.committed()

    def _cancel_requested(self) -> bool:
        now = time.monotonic()
        if not self.cancel.is_set() and now >= self.next_poll:
            self.next_poll = now + CANCEL_POLL
            record = self.ws.store.get_run(self.run_id)
            if self.claim is not None and record.epoch != self.claim.epoch:
                self.claim.lose(record.owner)  # taken over: found out before writing again
                self.claim.check()
            if record.cancel_requested:
                self.cancel.set()
            elif self.awaiting:
                self._check_gates()
        return self.cancel.is_set()

    # -- starting and finishing -------------------------------------------------------------

    def _start(self) -> None:
        run = self.run
        if run.state != RunState.RUNNING:  # else created running, by this runner's claim
            move_run(run, RunState.RUNNING)
        run.runner_pid = os.getpid()
        run.started_at = run.started_at or time.time()
        self.journal.run(run)
        self._event(None, -1, "run_started", params=run.params,  # masked already
                    upstream={n.name: list(n.upstream) for n in self.graph})
        claim = self.claim
        if claim is not None and claim.epoch > 1:
            self._event(None, -1, "run_claimed", owner=claim.owner, epoch=claim.epoch)
        for attempt in self.dead:  # its runner is gone: the attempt ended, how is unknown
            attempt.state, attempt.ended_at = RunState.INTERRUPTED.value, time.time()
            attempt.error = ("its runner stopped or lost the run before the attempt ended; "
                             f"the run was taken over by {claim.owner if claim else 'a resume'}")
            self.journal.update(attempt)
        for hook in self.hooks:
            hook.before_run(self.run, self.graph)
        for node in self.graph:
            prior = self.prior.get((node.name, -1))
            ti = self.tis[(node.name, -1)] = Instance(node.name, -1)
            if prior is not None and S(prior.state) in TERMINAL - RESUMABLE:
                ti.state, ti.attempt, ti.output = S(prior.state), prior.attempt, prior.output
                ti.files, ti.cache_key, ti.error = prior.files, prior.cache_key, prior.error
                ti.started, ti.ended = prior.started_at, prior.ended_at
            else:
                if prior is not None:
                    ti.attempt = prior.attempt
                self.journal.instance(ti)
        for node in self.graph:
            self.waiting[node.name] = len(node.upstream)
        for node in self.graph:  # in topological order: upstream tasks settle first
            state = self.tis[(node.name, -1)].state
            if node.name in self.done:
                continue  # settled already, by an upstream task settling above
            if state in TERMINAL:
                self._task_done(node.name, state)
            elif not node.upstream:
                self._evaluate(node)

    def _finish(self) -> RunResult:
        states = set(self.done.values())
        if self.cancelled:
            state = RunState.CANCELLED
        elif self.awaiting:
            state = RunState.WAITING
        elif states & {S.FAILED, S.UPSTREAM_FAILED, S.CANCELLED}:
            state = RunState.FAILED
        else:
            state = RunState.SUCCESS
        self._check_slas()
        if self.run.state != state:
            move_run(self.run, state)
        self.run.ended_at = time.time()
        self.journal.run(self.run)
        self._event(None, -1, "run_finished", state=state.value)
        if self.router is not None:  # bounded: a hung notifier must not hold the run
            self.router.flush(ALERT_FLUSH)
        self._commit(force=True)
        made = list(self.journal.made.values())
        # What this runner wrote is the whole story unless a resume adds earlier attempts, or
        # checks must come back as the store keeps them (JSON: tuples become lists).
        reread = bool(self.prior) or any(a.checks for a in made)
        result = build_result(
            self.ws, self.run_id, self.pipe.name, state.value,
            [ti.record(self.run_id) for ti in self.tis.values()], None if reread else made,
        )
        for hook in self.hooks:
            hook.after_run(result)
        return result

    # -- deciding what runs -----------------------------------------------------------------

    def _uncached(self, task: str) -> bool:
        """Whether ``task`` runs (or a gate asks) whatever the cache holds."""
        return self.force or task in self.cleared

    def _prepare(self, ti: Instance, node: Node) -> None:
        """Find the task's cache key; end it cached on a hit, else queue it."""
        spec = node.spec
        if spec.cache is not False:
            if ti.cache_key is None:  # a mapped task's items have theirs already (_keys)
                tis = self.tis
                outputs = {up: (tis[(up, -1)].output, tis[(up, -1)].files) for up in node.inputs}
                item = None if ti.index < 0 else sha256(serialize(ti.item, ti.task)[1])
                ti.meta, ti.cache_key = cache_key(node, outputs, self.params, self._root,
                                                  self.interval[1:], self.secret, item)
            entry = None if self._uncached(ti.task) else entry_for(
                node, ti.cache_key, self.params, self.cache, self.secret)
            if entry is not None and self._reusable(entry, spec):
                ti.output, ti.files = entry.output, entry.files
                self._end(ti, S.CACHED)
                return
        self._queue(ti)

    def _declared(self, spec: TaskSpec) -> dict[str, str]:
        found = self._paths.get(spec.name)
        if found is None:
            found = self._paths[spec.name] = outputs.resolve(spec.outputs, self._fields,
                                                             self._root)
        return found

    def _reusable(self, entry: CacheEntry, spec: TaskSpec) -> bool:
        """The entry's value is stored, and its declared files are on disk as recorded, or
        are put back now from the artifact store (engine/outputs.py)."""
        output = entry.output
        if output is None:
            return False
        memo = self._intact_memo
        if output not in memo:
            memo[output] = self.ws.holds(output)
        if not memo[output]:
            return False
        if spec.kind == "branch" and not self._can_choose(spec.name, output):
            return False  # it chose a task no longer after it: run it, as a fresh run would
        if not entry.files:
            return True
        try:
            declared = self._declared(spec)
        except CadenzaError:  # a path this run cannot fill in: the attempt will say so
            return False
        files = reuse.files(entry, declared, self._root, self.ws.artifacts)
        return files.usable and all(outputs.restore(self.ws.artifacts, path, digest)
                                    for path, digest in files.restore)

    # -- submitting and collecting ----------------------------------------------------------

    def _queue(self, ti: Instance) -> None:
        self._move(ti, QUEUED)
        ti.generation = self.journal.generation
        priority = self.graph.nodes[ti.task].spec.priority
        entry = (-priority, self.rank[ti.task], ti.index, next(self.arrivals), ti)
        heapq.heappush(self.ready, entry)

    def _submit_ready(self) -> None:
        blocked: list[tuple[int, int, int, int, Instance]] = []
        self.slot_retry = None
        turn = 0
        journal, direct = self.journal, self.direct
        check = self.claim.check if self.claim is not None else None
        cancel = self.cancel
        while self.ready and self.in_flight < self.limit and turn < SYNC_CHUNK:
            if cancel.is_set():
                break  # start nothing more: the loop records what ended, then cancels
            turn += self.synchronous  # a synchronous executor's chunk ends the turn
            entry = heapq.heappop(self.ready)
            ti = entry[-1]
            node = self.graph.nodes[ti.task]
            spec = node.spec
            pool = spec.pool
            if pool is not None and self.pool_used[pool] >= self.pipe.pools[pool]:
                blocked.append(entry)
                continue
            if ti.generation == journal.generation:
                self._commit(early=True)  # it became ready through writes not yet durable
            if check is not None:
                check()  # the claim is still ours (a stopped process finds out here)
            if pool is not None and self.shared_pools and not self._take_slot(pool, ti):
                blocked.append(entry)  # other runs hold the pool's slots: ask again soon
                continue
            ti.attempt += 1
            ti.token += 1
            ti.started, ti.ended, ti.error = time.time(), None, None
            self._move(ti, RUNNING)
            try:
                call = self._call(ti, node)
            except CadenzaError as damaged:  # an input damaged, a path that cannot be filled
                journal.instance(ti)
                ti.running = journal.attempt(ti, "running", None)
                self._settle(ti, AttemptResult(
                    S.FAILED, "error", ti.started, time.time(), error=str(damaged)))
                continue
            journal.instance(ti)
            ti.running = journal.attempt(ti, "running", call.log_path)
            if direct is not None:  # done when it returns: no Future, no pool slot held
                try:
                    result = direct(run_attempt, call)
                except BaseException as error:  # as a Future would hold it
                    if isinstance(error, KeyboardInterrupt):
                        raise  # Ctrl-C in an inline task cancels the run (see execute)
                    result = self._failure(ti, error)
                if pool is not None and self.shared_pools:
                    self._release_slot(pool, ti.task, ti.index)
                self._settle(ti, result)
                continue
            self.in_flight += 1
            key, token = (ti.task, ti.index), ti.token
            if spec.timeout is not None and not self.times_out:
                heapq.heappush(self.deadlines, (time.monotonic() + spec.timeout, key, token))
            future = self.executor.submit(run_attempt, call)
            ti.future = future
            if pool is not None:
                self.pool_used[pool] += 1
                self.pool_of[future] = pool
            if self.synchronous:  # done already: no callback, no queue
                self._collect(key, token, future)
            else:
                future.add_done_callback(self._reporter(key, token))
        self.pool_blocked = bool(blocked) and not self.ready
        for entry in blocked:
            heapq.heappush(self.ready, entry)

    # -- pools across runs ------------------------------------------------------------------

    def _take_slot(self, pool: str, ti: Instance) -> bool:
        """Take a slot of ``pool`` in the store for ``ti``, unless other runs held every one
        when last asked less than SLOT_POLL ago; False: it waits, and asks again then."""
        now = time.monotonic()
        again = self.slot_wait.get(pool)
        claim = self.claim
        assert claim is not None  # shared_pools
        if again is None or now >= again:
            holder = SlotHolder(self.run_id, ti.task, ti.index, claim.epoch)
            if self.ws.store.take_slot(pool, self.pipe.pools[pool], holder, claim.stale_after):
                self.slots_taken = True
                self.slot_wait.pop(pool, None)
                return True
            again = self.slot_wait[pool] = now + SLOT_POLL
        self.slot_retry = again if self.slot_retry is None else min(self.slot_retry, again)
        return False

    def _release_slot(self, pool: str, task: str, index: int) -> None:
        claim = self.claim
        assert claim is not None  # shared_pools
        self.ws.store.release_slot(pool, SlotHolder(self.run_id, task, index, claim.epoch))
        self.slot_wait.pop(pool, None)  # a task of this run waiting for it may take it now

    def _release_slots(self) -> None:
        """The run is over: give back every slot it still holds (those of calls that ran on,
        cancelled or past their timeout, too). A store that cannot be reached now is no harm:
        the slots stop counting once this runner's claim is released or goes stale."""
        claim = self.claim
        assert claim is not None  # shared_pools
        with contextlib.suppress(CadenzaError):
            self.ws.store.release_slots(self.run_id, claim.epoch)

    def _reporter(self, key: Key, token: int) -> Callable[[Future[AttemptResult]], None]:
        return lambda future: self.results.put((key, token, future))

    def _call(self, ti: Instance, node: Node) -> Call:
        spec, pipe, tis, values = node.spec, self.pipe, self.tis, self.values
        kwargs: dict[str, Any] = {}
        shell_inputs: dict[str, Path] = {}
        # another process reads its inputs from the artifact store itself, by reference
        value = values.of if self.keep_values or self.ws.in_memory else values.ref
        for up in node.inputs:
            if spec.kind == "shell":
                shell_inputs[up] = values.file(tis[(up, -1)])
            else:
                kwargs[up] = value(tis[(up, -1)])
        for p in node.params:
            kwargs[p] = self.params[p]
        if spec.map_over is not None:
            kwargs[spec.map_over] = ti.item
        if ti.index < 0:
            log_path = f"{self._log_root}/{ti.task}/{ti.attempt}.log"
        else:
            log_path = f"{self._log_root}/{ti.task}/{ti.index}.{ti.attempt}.log"
        ti.log_path = log_path
        keep = self.keep_values  # else functions travel by name, to another process
        checks = pipe.checks.get(ti.task)
        return Call(  # positional, in field order: this runs once per attempt
            pipe.name, self.run_id, ti.task, ti.index, ti.attempt, spec.kind,
            spec.fn if keep or spec.fn is None else TaskFunction(pipe.token, ti.task),
            kwargs, self.params, log_path, self._home, self._root, spec.retry, spec.timeout,
            self.ws.artifacts, keep,
            {name: self._root / path for name, path in self._declared(spec).items()},
            spec.command, shell_inputs, spec.shell_inputs, self.interval, node.wants_ctx,
            tuple((c.name, c.severity, c.fn if keep else CheckFunction(pipe.token, ti.task, i))
                  for i, c in enumerate(checks)) if checks else (),
            {up: tis[(up, -1)].output for up in node.inputs}, spec.resources or None,
        )

    def _collect(self, key: Key, token: int, future: Future[AttemptResult]) -> None:
        self.in_flight -= 1
        if self.abandoned:
            self.abandoned.pop(future, None)
        pool = self.pool_of.pop(future, None)
        if pool is not None:  # the slot frees when the call really ends, late or not
            self.pool_used[pool] -= 1
            self.pool_blocked = False
            if self.shared_pools:
                self._release_slot(pool, *key)
        ti = self.tis[key]
        if ti.token != token or ti.state is not RUNNING or future.cancelled():
            return  # a late result: its attempt already timed out or was cancelled
        ti.future = None
        error = future.exception()
        self._settle(ti, future.result() if error is None else self._failure(ti, error))

    def _failure(self, ti: Instance, error: BaseException) -> AttemptResult:
        """The result of an attempt that raised past ``run_attempt``: its worker crashed, or
        an inline task was interrupted (KeyboardInterrupt)."""
        outcome = classify(error, self.graph.nodes[ti.task].spec.retry, ti.attempt)
        return AttemptResult(
            outcome.state, outcome.kind, ti.started or time.time(), time.time(),
            error=str(error) or type(error).__name__,
        )

    def _settle(self, ti: Instance, result: AttemptResult) -> None:
        """Record a finished attempt; one that ran past its timeout counts as timed out."""
        timeout = self.graph.nodes[ti.task].spec.timeout
        if timeout is not None and result.ended - result.started > timeout:
            result = self._timeout_result(ti, timeout, result.started,
                                          f"took {result.ended - result.started:.3g}s; its "
                                          "result is discarded")
        self._record(ti, result)

    def _time_out(self, ti: Instance, token: int) -> None:
        if ti.token != token or ti.state is not RUNNING:
            return
        if not self.killable and ti.future is not None and _ends_soon(ti.future):
            return  # it returned late (a call that held the GIL froze this loop): see _settle
        timeout = self.graph.nodes[ti.task].spec.timeout
        assert timeout is not None
        if self.killable and ti.future is not None:
            self.executor.kill(ti.future)  # type: ignore[attr-defined]
            how = "was stopped" if getattr(self.executor, "stops_calls", True) else (
                "was let go: it may run on in its Dask worker's thread (--dask-isolation "
                "threads), its result discarded")
        else:  # a thread cannot be stopped: it keeps its slots until it returns (_stalled)
            if ti.future is not None:
                self.abandoned[ti.future] = _label(ti)
            how = ("is still running in its thread, which cannot be stopped: it keeps its "
                   "worker thread and pool slot until it returns, its result discarded, and "
                   "the process exits only when it returns (cadenza run exits at once). The "
                   "processes executor stops a task at its timeout")
        ti.token += 1  # whatever the attempt still sends is late now
        self._record(ti, self._timeout_result(ti, timeout, ti.started or time.time(), how))

    def _timeout_result(self, ti: Instance, timeout: float, started: float,
                        how: str) -> AttemptResult:
        error = TaskTimeoutError(
            f"Task {ti.task!r} ran past its timeout of {timeout:g}s on attempt {ti.attempt} "
            f"and {how}.", task=ti.task, run_id=self.run_id, attempt=ti.attempt,
        )
        outcome = classify(error, self.graph.nodes[ti.task].spec.retry, ti.attempt)
        return AttemptResult(outcome.state, outcome.kind, started, time.time(), error=str(error))

    # -- state changes ----------------------------------------------------------------------

    def _move(self, ti: Instance, new: TaskState) -> None:
        old = ti.state
        ti.state = transition(ti.task, self.run_id, old, new)
        if new is FAILED or new is UP_FOR_RETRY:
            self.journal.event(ti.task, ti.index, VALUE[new],
                               {"attempt": ti.attempt, "error": ti.error})
        elif new is not QUEUED:
            self.journal.event(ti.task, ti.index, VALUE[new], {})
        for hook in self.hooks:
            hook.after_transition(ti.task, ti.index, old, new)

    def _end(self, ti: Instance, state: TaskState) -> None:
        if ti.state is not state:
            self._move(ti, state)
        ti.ended = ti.ended or time.time()
        self.journal.instance(ti)
        if ti.index < 0:
            self._task_done(ti.task, state)
            return
        self.remaining[ti.task] -= 1
        if self.remaining[ti.task] == 0:
            self._aggregate(ti.task)

    def _drain(self) -> None:
        """The run is cancelled: start nothing more, give the calls running CANCEL_GRACE
        seconds to end, then stop those that can be stopped. What ends meanwhile is recorded
        as it ended: no finished work is lost."""
        self._collect_until(time.monotonic() + CANCEL_GRACE)
        if self.killable and self.in_flight > len(self.abandoned):
            running = {ti.future: ti for ti in self.tis.values()
                       if ti.state is RUNNING and ti.future is not None}
            for future in self._kill(list(running)):
                running[future].token += 1  # killed: _cancel_all records it cancelled
            self._collect_until(time.monotonic() + CANCEL_SETTLE)  # those that had replied

    def _collect_until(self, end: float) -> None:
        while self.in_flight > len(self.abandoned) and (left := end - time.monotonic()) > 0:
            try:
                self._collect(*self.results.get(timeout=left))
            except queue.Empty:
                return

    def _stalled(self) -> bool:
        """Whether the ready tasks can start only once a timed-out thread returns, which may
        be never: then each is ended, cancelled, saying what holds it up."""
        if (not self.ready or self.retries or self.in_flight > len(self.abandoned)
                or self.slot_retry is not None):  # another run's slot frees in time
            return False
        held = ", ".join(sorted(self.abandoned.values()))
        while self.ready:
            ti = heapq.heappop(self.ready)[-1]
            pool = self.graph.nodes[ti.task].spec.pool
            if pool is not None and self.pool_used[pool] >= self.pipe.pools[pool]:
                what = f"pool {pool!r} is held by"
            else:
                what = "every worker thread is held by"
            ti.error = (f"Task {ti.task!r} could not start: {what} {held}, which ran past its "
                        "timeout and is still running in its thread (a thread cannot be "
                        "stopped). Resume the run once it has returned.")
            self._end(ti, S.CANCELLED)
        self.pool_blocked = False
        return True

    def _abandon(self) -> None:
        """The claim is lost: stop the calls that can be stopped, record nothing."""
        self.ready.clear()
        if self.killable:
            self._kill([ti.future for ti in self.tis.values()
                        if ti.future is not None and not ti.future.done()])

    def _kill(self, futures: list[Future[AttemptResult]]) -> list[Future[AttemptResult]]:
        """Stop these calls together, and say which it stopped (not those that had ended):
        one by one, a call waiting in the executor's queue (Dask's) could start in the slot
        another's kill frees, before its own kill."""
        kill_all = getattr(self.executor, "kill_all", None)
        if kill_all is not None:
            return list(kill_all(futures))
        kill = self.executor.kill  # type: ignore[attr-defined]
        return [future for future in futures if kill(future)]

    def _cancel_all(self) -> None:
        self.cancelled = True
        running = [ti for ti in self.tis.values() if ti.state is S.RUNNING
                   and ti.running is not None and ti.running.state == "running"]
        if self.killable:
            self._kill([ti.future for ti in running if ti.future is not None])
        for ti in list(self.tis.values()):
            if ti.state in TERMINAL:
                continue
            attempt = ti.running
            if ti.state is S.RUNNING and attempt is not None and attempt.state == "running":
                ti.token += 1
                ti.error = "cancelled while running"
                # the attempt's own record, closed: inline, it was interrupted in this thread
                attempt.state, attempt.ended_at, attempt.error = "cancelled", time.time(), ti.error
                self.journal.update(attempt)
            self._move(ti, S.CANCELLED)
            ti.ended = time.time()
            self.journal.instance(ti)
            if ti.index < 0:
                self.done[ti.task] = S.CANCELLED
        self.ready.clear()
        self.awaiting.clear()

    # -- records ----------------------------------------------------------------------------

    def _event(self, task: str | None, index: int, kind: str, **data: Any) -> None:
        self.journal.event(task, index, kind, data)


def _ends_soon(future: Future[AttemptResult]) -> bool:
    """Whether a call past its deadline ends within a moment: one that held the GIL in C
    code froze the loop too, and is only finishing its attempt when the loop sees the time."""
    return bool(wait_for_futures([future], TIMEOUT_SETTLE).done)


def _label(ti: Instance) -> str:
    return repr(ti.task) + (f"[{ti.index}]" if ti.index >= 0 else "")
