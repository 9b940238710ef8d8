"""What a person does to runs from outside the runner, shared by the CLI and the web UI:
trigger, retry, cancel, and decide a gate. Each writes to the store and returns; a runner or
the scheduler picks the change up."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from cadenza.engine.run import new_run_id
from cadenza.engine.states import TERMINAL, TaskState
from cadenza.exceptions import CadenzaError
from cadenza.params import resolve_params
from cadenza.pipeline import Pipeline
from cadenza.secrets import masked_params
from cadenza.store.base import Approval, Batch, Event, MetadataStore, RunRecord, effective_state

QUEUED = "queued"


def trigger(store: MetadataStore, pipe: Pipeline, params: Mapping[str, Any] | None, *,
            target: str = "", from_text: bool = False) -> str:
    """Queue a manual run of ``pipe`` with ``params`` checked against its params; return its
    id. A scheduler (``cadenza scheduler`` or the one inside ``cadenza ui``) starts it."""
    resolved = resolve_params(pipe.name, pipe.params, params, from_text=from_text)
    run = RunRecord(new_run_id(pipe.name), pipe.name, QUEUED,
                    masked_params(resolved, pipe.secret_params), time.time(), target=target)
    store.create_runs([run])
    return run.run_id


def retry(store: MetadataStore, run_id: str) -> RunRecord:
    """Queue a finished run again: the scheduler resumes it, re-running only what did not
    succeed."""
    record = store.get_run(run_id)
    state = effective_state(record)
    if state in ("running", QUEUED):
        raise CadenzaError(f"Run {run_id} is {state}; retry it once it has ended.")
    if state == "success":
        raise CadenzaError(f"Run {run_id} succeeded; there is nothing to retry. Trigger a new "
                           "run instead.")
    record.state, record.ended_at, record.cancel_requested = QUEUED, None, False
    store.apply(Batch(runs=[record], events=[Event(run_id, "run_queued", time.time())]))
    return record


def cancel(store: MetadataStore, run_id: str) -> str:
    """Stop a run. A live runner is asked to stop its tasks (``"requested"``); a run nobody
    runs (queued, waiting, or whose runner died) is recorded cancelled at once
    (``"cancelled"``); an ended run is left as it is (its state is returned)."""
    record = store.get_run(run_id)
    state = effective_state(record)
    if state == "running":
        store.request_cancel(run_id)
        return "requested"
    if record.state not in ("running", QUEUED, "waiting", "interrupted"):
        return record.state
    batch = Batch()
    now = time.time()
    for ti in store.task_instances(run_id):
        if TaskState(ti.state) not in TERMINAL:
            ti.state, ti.ended_at = TaskState.CANCELLED.value, now
            batch.task_instances.append(ti)
    record.state, record.ended_at = "cancelled", now
    batch.runs.append(record)
    batch.events.append(Event(run_id, "run_finished", now, data={"state": "cancelled"}))
    store.apply(batch)
    return "cancelled"


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
