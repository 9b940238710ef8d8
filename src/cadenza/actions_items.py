"""Retry only the failed items of a mapped task: the run is queued again, its runner keeps
every item that succeeded (engine/mapping.py ``_expand``) and runs the failed ones, then what
depends on them. Beside actions.py, which holds the run-wide actions."""

from __future__ import annotations

import time

from cadenza import actions
from cadenza.engine.states import SUCCEEDED, TaskState
from cadenza.exceptions import CadenzaError
from cadenza.store.base import Batch, Event, MetadataStore

KEPT = frozenset(s.value for s in SUCCEEDED) | {TaskState.SKIPPED.value}
"""Item states a retry keeps: they are not run again."""


def failed_items(store: MetadataStore, run_id: str, task: str) -> list[int]:
    """The map indexes of ``task``'s items in ``run_id`` that did not succeed."""
    return sorted(ti.map_index for ti in store.task_instances(run_id)
                  if ti.task == task and ti.map_index >= 0 and ti.state not in KEPT)


def retry_failed_items(store: MetadataStore, run_id: str, task: str, by: str = "") -> list[int]:
    """Queue ``run_id`` again so that ``task``'s failed items run once more (and the tasks
    after them); return their indexes. The items that succeeded keep their outputs."""
    failed = failed_items(store, run_id, task)
    if not failed:
        raise CadenzaError(
            f"Task {task!r} of run {run_id} has no failed mapped items to retry; retry the "
            "whole run instead if something else failed.")
    actions.retry(store, run_id)
    store.apply(Batch(events=[Event(run_id, "items_retried", time.time(), task,
                                    data={"items": failed[:100], "count": len(failed),
                                          "by": by})]))
    return failed
