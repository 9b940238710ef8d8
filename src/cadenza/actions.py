"""What a person does to runs from outside the runner, shared by the CLI and the web UI:
trigger, retry, cancel, and decide a gate. Each writes to the store and returns; a runner or
the scheduler picks the change up. Retry and cancel change a run nobody runs: they claim it
for the moment of their write, as a runner would, so no runner can start on it meanwhile."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cadenza.engine.claim import Claim
from cadenza.engine.run import new_run_id
from cadenza.engine.states import RUN_ENDED, TERMINAL, RunState, TaskState, move_run
from cadenza.exceptions import CadenzaError, RunClaimedError
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
    store.decide(Approval(run_id, gate, approved, by, time.time(), reason))
    return record
