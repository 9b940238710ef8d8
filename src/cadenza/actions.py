"""What a person does to runs from outside the runner, shared by the CLI and the web UI:
trigger, retry, cancel, and decide a gate. Each writes to the store and returns; a runner or
the scheduler picks the change up. Retry and cancel change a run nobody runs: they claim it
for the moment of their write, as a runner would, so no runner can start on it meanwhile."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadenza.engine.claim import Claim
from cadenza.engine.gates import counts
from cadenza.engine.run import new_run_id
from cadenza.engine.states import (
    RUN_ENDED,
    SUCCEEDED,
    TERMINAL,
    RunState,
    TaskState,
    move_run,
)
from cadenza.exceptions import CadenzaError, RunClaimedError
from cadenza.graph import Node
from cadenza.params import resolve_params
from cadenza.pipeline import Pipeline
from cadenza.secrets import sealed_params
from cadenza.store.base import Approval, Batch, Event, MetadataStore, RunRecord, effective_state

QUEUED = RunState.QUEUED.value


def trigger(store: MetadataStore, pipe: Pipeline, params: Mapping[str, Any] | None, *,
            target: str = "", from_text: bool = False, home: Path | None = None) -> str:
    """Queue a manual run of ``pipe`` with ``params`` checked against its params; return its
    id. A scheduler (``cadenza scheduler`` or the one inside ``cadenza ui``) starts it. Secret
    params given are stored sealed with the key of ``home``, the store's folder (None: a
    store in memory)."""
    resolved = resolve_params(pipe.name, pipe.params, params, from_text=from_text)
    run = RunRecord(new_run_id(pipe.name), pipe.name, QUEUED,
                    sealed_params(resolved, pipe.secret_params, params or {}, home), time.time(),
                    target=target)
    store.create_runs([run])
    return run.run_id


def retry(store: MetadataStore, run_id: str) -> RunRecord:
    """Queue a finished run again: the scheduler resumes it, re-running only what did not
    succeed."""
    record = store.get_run(run_id)
    state = effective_state(record, store.clock())
    if state in (RunState.RUNNING, QUEUED):
        raise CadenzaError(f"Run {run_id} is {state}; retry it once it has ended.")
    if state == RunState.SUCCESS:
        raise CadenzaError(f"Run {run_id} succeeded; there is nothing to retry. Trigger a new "
                           "run instead.")
    try:
        claim = Claim.take(store, run_id)
    except RunClaimedError as busy:  # a runner took it on just now
        raise CadenzaError(f"Run {run_id} is running (by {busy.owner!r}); retry it once it "
                           "has ended.") from None
    try:
        record = store.get_run(run_id)
        move_run(record, RunState.QUEUED)
        record.ended_at, record.cancel_requested = None, False
        store.apply(Batch(runs=[record], events=[Event(run_id, "run_queued", time.time())]),
                    claim.fence)
    finally:
        claim.stop(store)
    return record


def cancel(store: MetadataStore, run_id: str) -> str:
    """Stop a run. A live runner is asked to stop its tasks (``"requested"``); a run nobody
    runs (queued, waiting, or whose runner died) is recorded cancelled at once
    (``"cancelled"``); an ended run is left as it is (its state is returned)."""
    record = store.get_run(run_id)
    if effective_state(record, store.clock()) == RunState.RUNNING:
        store.request_cancel(run_id)
        return "requested"
    if RunState(record.state) not in (RunState.RUNNING, QUEUED, RunState.WAITING,
                                      RunState.INTERRUPTED):
        return record.state
    try:
        claim = Claim.take(store, run_id)
    except RunClaimedError:  # a runner took it on just now: ask it to stop
        store.request_cancel(run_id)
        return "requested"
    try:
        record = store.get_run(run_id)
        if RunState(record.state) in RUN_ENDED:  # it ended while we looked
            return record.state
        batch = Batch()
        now = time.time()
        for ti in store.task_instances(run_id):
            if TaskState(ti.state) not in TERMINAL:
                ti.state, ti.ended_at = TaskState.CANCELLED.value, now
                batch.task_instances.append(ti)
        if record.state == RunState.RUNNING:  # its runner is gone, as the claim found
            move_run(record, RunState.INTERRUPTED)
        move_run(record, RunState.CANCELLED)
        record.ended_at = now
        batch.runs.append(record)
        batch.events.append(Event(run_id, "run_finished", now,
                                  data={"state": RunState.CANCELLED.value}))
        store.apply(batch, claim.fence)
    finally:
        claim.stop(store)
    return RunState.CANCELLED.value


def waiting_gates(store: MetadataStore, run_id: str) -> list[str]:
    """The gates of a run that wait for a person's decision."""
    return sorted(ti.task for ti in store.task_instances(run_id, mapped=False)
                  if ti.state == TaskState.AWAITING_APPROVAL)


def decide(store: MetadataStore, run_id: str, gate: str, approved: bool, by: str,
           reason: str = "") -> RunRecord:
    """Record a decision on a waiting gate; return the run (to tell whether a runner is live
    to act on it, or a resume or the scheduler must)."""
    record = store.get_run(run_id)
    waiting = waiting_gates(store, run_id)
    if gate not in waiting:
        states = {ti.task: ti.state for ti in store.task_instances(run_id, mapped=False)}
        raise CadenzaError(
            f"Task {gate!r} in run {run_id} is not waiting for approval (it is "
            f"{states.get(gate, 'not in this run')}). Gates waiting now: "
            f"{', '.join(waiting) or 'none'}."
        )
    if not approved and not reason.strip():
        raise CadenzaError(f"Rejecting {gate!r} needs a reason; it is recorded with the run.")
    # On the store's clock, as the gate's opening is (engine/gates.py): a decision counts for
    # the opening it follows, never for one after a retry or clear asks again.
    store.decide(Approval(run_id, gate, approved, by, store.clock(), reason))
    return record


MAX_WAITING = 500
"""By default, at most this many waiting runs are listed (the oldest), and at most this many
gates are decided by one request of the API."""


@dataclass(slots=True)
class Waiting:
    """A gate of a run waiting for a person's decision."""

    run: RunRecord
    gate: str
    since: float | None


def waiting_runs(store: MetadataStore, pipeline: str | None = None, gate: str | None = None,
                 most: int | None = MAX_WAITING) -> list[Waiting]:
    """Every gate that waits for a decision nobody has made yet, in the runs left ``waiting``
    (oldest first; at most ``most`` runs, None: all), optionally of one pipeline and
    gate. Reads the runs by their state (indexed), then the gates of each of those runs."""
    found: list[Waiting] = []
    runs = [r for r in store.runs_in_states([RunState.WAITING.value])
            if pipeline in (None, r.pipeline)][:most]
    for run in runs:
        decided: dict[str, Approval] | None = None
        for ti in store.task_instances(run.run_id, mapped=False):
            if ti.state != TaskState.AWAITING_APPROVAL or gate not in (None, ti.task):
                continue
            if decided is None:
                decided = {a.task: a for a in store.approvals(run.run_id)}
            decision = decided.get(ti.task)
            if decision is None or not counts(decision, ti.started_at):  # not decided yet
                found.append(Waiting(run, ti.task, ti.started_at))
    return found


def decide_many(store: MetadataStore, pairs: list[tuple[str, str]], approved: bool, by: str,
                reason: str = "") -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Decide each ``(run_id, gate)``: return those decided and, by run id, why the others
    were not (a run that ended or was decided meanwhile). A rejection needs a reason."""
    if not approved and not reason.strip():
        raise CadenzaError("Rejecting needs a reason; it is recorded with each run.")
    done: list[tuple[str, str]] = []
    refused: dict[str, str] = {}
    for run_id, gate in pairs:
        try:
            decide(store, run_id, gate, approved, by, reason)
        except CadenzaError as exc:
            refused[run_id] = str(exc)
        else:
            done.append((run_id, gate))
    return done, refused


# -- task actions: clear and mark -----------------------------------------------------------------

ENDED_FOR_ACTIONS = (RunState.SUCCESS, RunState.FAILED, RunState.CANCELLED)
"""Runs whose tasks a person may clear or mark: a runner is done with them."""


def _ended_run(store: MetadataStore, run_id: str, verb: str) -> RunRecord:
    record = store.get_run(run_id)
    state = effective_state(record, store.clock())
    if state not in ENDED_FOR_ACTIONS:
        then = ("cancel it or let it end first" if state != RunState.INTERRUPTED
                else f"resume it (cadenza run --resume {run_id}) or cancel it first")
        raise CadenzaError(f"Run {run_id} is {state}; a task can be {verb} only in an ended "
                           f"run (success, failed or cancelled): {then}.")
    return record


def _task_of(pipe: Pipeline, run_id: str, task: str) -> Node:
    nodes = pipe.graph().nodes
    if task not in nodes:
        raise CadenzaError(f"Run {run_id} (pipeline {pipe.name!r}) has no task {task!r}. "
                           f"Its tasks: {', '.join(nodes)}.")
    return nodes[task]


def _claimed(store: MetadataStore, run_id: str, verb: str) -> Claim:
    try:
        return Claim.take(store, run_id)
    except RunClaimedError as busy:  # a runner took it on just now
        raise CadenzaError(f"Run {run_id} is running (by {busy.owner!r}); a task can be "
                           f"{verb} once it has ended.") from None


def clear(store: MetadataStore, pipe: Pipeline, run_id: str, task: str, *,
          downstream: bool = False, by: str, reason: str = "") -> list[str]:
    """Send ``task`` (with ``downstream``: and every task after it) of an ended run back to
    pending, and queue the run again: the scheduler (or ``cadenza run --resume``) runs those
    tasks again, as it re-runs whatever else did not succeed; the others keep their results.
    Attempts stay as history; the next is numbered on. Return the tasks cleared, in run order.
    A cleared task runs again whatever its cache holds: the resume reads the ``task_cleared``
    event (engine/launch.py)."""
    _ended_run(store, run_id, "cleared")
    _task_of(pipe, run_id, task)
    graph = pipe.graph()
    wanted = graph.descendants([task]) if downstream else {task}
    names = [name for name in graph.order if name in wanted]
    claim = _claimed(store, run_id, "cleared")
    try:
        record = _ended_run(store, run_id, "cleared")  # again, under the claim
        now = time.time()
        batch = Batch()
        for ti in store.task_instances(run_id):
            if ti.task in wanted and ti.state != TaskState.PENDING:
                ti.state, ti.ended_at, ti.error = TaskState.PENDING.value, None, None
                ti.output, ti.files = None, {}
                batch.task_instances.append(ti)
        _requeue(record)
        batch.runs.append(record)
        batch.events += [
            Event(run_id, "task_cleared", now, task=task,
                  data={"by": by, "reason": reason, "tasks": names}),
            Event(run_id, "run_queued", now),
        ]
        store.apply(batch, claim.fence)
    finally:
        claim.stop(store)
    return names


def _requeue(record: RunRecord) -> None:
    move_run(record, RunState.QUEUED)
    record.ended_at, record.cancel_requested = None, False


MARKABLE = (TaskState.SUCCESS, TaskState.FAILED)


def mark(store: MetadataStore, pipe: Pipeline, run_id: str, task: str, state: str, *,
         by: str, reason: str) -> str:
    """Set ``task`` of an ended run to ``state`` (success or failed) by hand, with a reason,
    and recompute the run's state from its tasks; return the run's new state. Nothing runs
    now. A retry runs a task marked failed again, as any failed task (its downstream that
    succeeded keep their results unless cleared); a task marked success counts as done, so a
    retry runs the tasks after it that did not run. A task marked success has no output, so a
    task whose value another task reads cannot be marked success (clear it to run it again
    instead)."""
    if state not in MARKABLE:
        raise CadenzaError(f"A task can be marked success or failed, not {state!r}.")
    if not reason.strip():
        raise CadenzaError(f"Marking {task!r} {state} needs a reason; it is recorded with the "
                           "run.")
    _ended_run(store, run_id, "marked")
    node = _task_of(pipe, run_id, task)
    if state == TaskState.SUCCESS:
        graph = pipe.graph()
        readers = [d for d in node.downstream if task in graph.nodes[d].inputs]
        if readers:
            raise CadenzaError(
                f"Task {task!r} cannot be marked success: {', '.join(readers)} "
                f"read{'s' if len(readers) == 1 else ''} its value, and a task marked success "
                f"has none. Clear it to run it again: cadenza clear {run_id} {task}"
            )
    claim = _claimed(store, run_id, "marked")
    try:
        record = _ended_run(store, run_id, "marked")
        now = time.time()
        tis = store.task_instances(run_id)
        mine = [ti for ti in tis if ti.task == task]
        parent = next((ti for ti in mine if ti.map_index < 0), None)
        if parent is None:
            raise CadenzaError(f"Task {task!r} has no record in run {run_id}: it never "
                               "started, so there is nothing to mark.")
        if parent.state == state:
            raise CadenzaError(f"Task {task!r} in run {run_id} is {state} already.")
        error = f"marked failed by {by}: {reason}" if state == TaskState.FAILED else None
        was = parent.state
        for ti in mine:
            ti.state, ti.error = state, error
            ti.ended_at = ti.ended_at or now
            if state == TaskState.SUCCESS:
                ti.output, ti.files = None, {}
        batch = Batch(task_instances=mine)
        new = run_state_of([ti.state for ti in tis if ti.map_index < 0], record)
        if new != record.state:
            move_run(record, new)
            record.ended_at = now
            batch.runs.append(record)
        batch.events.append(Event(run_id, "task_marked", now, task=task,
                                  data={"state": state, "by": by, "reason": reason,
                                        "was": was, "run_state": new.value}))
        store.apply(batch, claim.fence)
    finally:
        claim.stop(store)
    return record.state


def run_state_of(states: list[str], record: RunRecord) -> RunState:
    """An ended run's state as its tasks now say: success when every task succeeded, was
    cached or skipped; else cancelled if it was cancelled and a task still is; else failed."""
    if all(TaskState(s) in SUCCEEDED or s == TaskState.SKIPPED for s in states):
        return RunState.SUCCESS
    if record.state == RunState.CANCELLED and TaskState.CANCELLED in states:
        return RunState.CANCELLED
    return RunState.FAILED
