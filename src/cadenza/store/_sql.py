"""What the two SQL stores (store/sqlite.py, store/postgres.py) share: their tables' column
lists, in the order the rows are read, and those rows made records. A column that holds JSON
holds NULL for an empty value."""

from __future__ import annotations

import json
from typing import Any

from cadenza.store.base import (
    AttemptRecord,
    CacheEntry,
    Event,
    RunRecord,
    TaskInstanceRecord,
)

RUN_COLS = (
    "run_id, pipeline, state, params, created_at, target, started_at, ended_at, logical_date, "
    "interval_start, interval_end, runner_pid, heartbeat, cancel_requested, owner, epoch"
)
TI_COLS = (
    "run_id, task, map_index, state, attempt, cache_key, output, files, started_at, ended_at, "
    "error"
)
ATTEMPT_COLS = (
    "run_id, task, map_index, attempt, state, started_at, ended_at, error, traceback, log_path, "
    "checks"
)
ART_COLS = "hash, serializer, size, pipeline, task, run_id, created_at, name, uri, data"
CACHE_COLS = "pipeline, task, key, output, files, run_id, created_at, meta"
EVENT_COLS = "run_id, kind, ts, task, map_index, data, id"


def loads(text: str | None, empty: Any) -> Any:
    return json.loads(text) if text else empty


def run(row: tuple[Any, ...] | list[Any]) -> RunRecord:
    r = list(row)
    r[3] = json.loads(r[3])
    r[13] = bool(r[13])  # SQLite keeps 0 or 1
    return RunRecord(*r)


def task_instance(r: tuple[Any, ...]) -> TaskInstanceRecord:
    return TaskInstanceRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], loads(r[7], {}), r[8],
                              r[9], r[10])


def attempt(r: tuple[Any, ...]) -> AttemptRecord:
    return AttemptRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                         loads(r[10], []))


def cache_entry(r: tuple[Any, ...]) -> CacheEntry:
    return CacheEntry(r[0], r[1], r[2], r[3], loads(r[4], {}), r[5], r[6], json.loads(r[7]))


def event(r: tuple[Any, ...]) -> Event:
    return Event(r[0], r[1], r[2], r[3], r[4], loads(r[5], {}), r[6])
