"""What each page and API endpoint shows, read from the store once and returned as plain
JSON-able dicts: the JSON API returns them as they are, the pages render them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cadenza._words import attempt_label
from cadenza.engine.logs import StoredLogs
from cadenza.engine.plan import plan_pipeline
from cadenza.engine.run import RUN_ID
from cadenza.exceptions import CadenzaError, RunNotFoundError
from cadenza.lineage import lineage_tree
from cadenza.params import Param, resolve_params
from cadenza.pipeline import NAME, PIPELINE_NAME, Pipeline
from cadenza.report import critical_path, dag_of, dag_order
from cadenza.schedule.cron import describe_dst, next_fire_times
from cadenza.schedule.scheduler import Entry
from cadenza.secrets import mask_data
from cadenza.show import render
from cadenza.store.base import (
    ArtifactRecord,
    AttemptRecord,
    RunRecord,
    TaskInstanceRecord,
    effective_state,
)
from cadenza.workspace import Workspace

PAGE = 25
"""Runs per page of a list, and runs (columns) in a pipeline's grid."""
RATE_OF = 50
"""A pipeline's success rate is over its last this many ended runs."""
LOG_CHUNK = 256 * 1024
"""At most this much of a log is sent at once; a live tail asks again from where it got."""
HASH = re.compile(r"[0-9a-f]{8,128}\Z")
ENDED = ("success", "failed", "cancelled", "interrupted")


class NotFound(CadenzaError):
    """A page asked for something that does not exist (or an id that cannot be one): 404."""


def check_id(kind: str, value: str) -> str:
    """``value`` if it is a valid ``kind`` (run, task, pipeline, artifact) id, else NotFound:
    ids reach file paths and SQL, so nothing else may pass: none of the patterns admits ``/``,
    ``\\``, NUL or a leading dot, so no id can be ``..`` or climb out of a folder."""
    pattern = {"run": RUN_ID, "task": NAME, "pipeline": PIPELINE_NAME, "artifact": HASH}[kind]
    if not pattern.match(value):
        raise NotFound(f"There is no {kind} {value!r}: that is not a valid {kind} id.")
    return value


@dataclass
class Site:
    """What the UI serves: one workspace and the pipelines it could load."""

    workspace: Workspace
    entries: dict[str, Entry] = field(default_factory=dict)
    load_errors: dict[str, str] = field(default_factory=dict)
    """Targets that failed to load, with why (shown, never fatal)."""

    def pipeline(self, name: str) -> Pipeline:
        entry = self.entries.get(check_id("pipeline", name))
        if entry is None:
            raise NotFound(
                f"Pipeline {name!r} is not loaded by this UI; start `cadenza ui` with its file "
                "or list it in cadenza.toml."
            )
        return entry.pipeline

    def run(self, run_id: str) -> RunRecord:
        try:
            return self.workspace.store.get_run(check_id("run", run_id))
        except RunNotFoundError:
            raise NotFound(f"There is no run {run_id!r}.") from None

    def artifact(self, digest: str) -> ArtifactRecord:
        record = self.workspace.store.artifact(check_id("artifact", digest))
        if record is None:
            raise NotFound(f"There is no artifact {digest!r}.")
        return record


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def versioned(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with a ``version``: a hash of everything in it but durations (which grow while
    a run goes on). A live page holds the version it was rendered from and reloads when the API
    answers another: what changed between rendering and the first poll is not missed."""

    def steady(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: steady(v) for k, v in value.items() if k != "duration"}
        if isinstance(value, list):
            return [steady(v) for v in value]
        return value

    text = json.dumps(steady(data), sort_keys=True, default=str)
    return {**data, "version": hashlib.sha256(text.encode()).hexdigest()[:16]}


def run_summary(run: RunRecord, now: float | None = None) -> dict[str, Any]:
    """``now``: the store's clock (``store.clock()``), what the run's owner is judged by."""
    end = run.ended_at or (now or time.time())
    return {
        "run_id": run.run_id, "pipeline": run.pipeline, "state": effective_state(run, now),
        "created_at": _iso(run.created_at), "started_at": _iso(run.started_at),
        "ended_at": _iso(run.ended_at), "logical_date": run.logical_date,
        "duration": end - run.started_at if run.started_at else None,
    }


# -- pipelines ----------------------------------------------------------------------------------

def pipelines(site: Site) -> dict[str, Any]:
    store = site.workspace.store
    names = sorted(set(site.entries) | set(store.pipelines()))
    paused = store.paused()
    now = store.clock()  # owners are judged on the store's clock: one read per page
    rows = []
    for name in names:
        recent = store.list_runs(name, RATE_OF)
        states = [effective_state(r, now) for r in recent]
        ended = [s for s in states if s in ENDED]
        rows.append({
            **_head(site, name, paused),
            "last_runs": [run_summary(r, now) for r in recent[:10]],
            "success_rate": (ended.count("success") / len(ended)) if ended else None,
            "running": states.count("running"),
        })
    return versioned({"pipelines": rows, "load_errors": site.load_errors})


def _head(site: Site, name: str, paused: set[str]) -> dict[str, Any]:
    """What every view of a pipeline shows first: loaded or not, paused, its schedule in
    words and its next run."""
    entry = site.entries.get(name)
    pipe = entry.pipeline if entry else None
    head = {"name": name, "loaded": pipe is not None, "paused": name in paused,
            "description": pipe.description if pipe else "", "schedule": None,
            "next_run": None}
    if pipe is not None and pipe.schedule is not None:
        upcoming = next_fire_times(pipe.schedule, datetime.now(UTC), 1)
        head["schedule"] = pipe.schedule.description
        head["next_run"] = upcoming[0].local_end.isoformat() if upcoming else None
    return head


def pipeline_head(site: Site, name: str) -> dict[str, Any]:
    """A loaded pipeline's head alone, for its plan, schedule and markdown tabs."""
    site.pipeline(name)
    return _head(site, name, site.workspace.store.paused())


def pipeline(site: Site, name: str, offset: int = 0) -> dict[str, Any]:
    """The DAG with each task's latest state, the grid of recent runs, and params."""
    check_id("pipeline", name)
    store = site.workspace.store
    entry = site.entries.get(name)
    runs = store.list_runs(name, PAGE, max(0, offset))
    if entry is None and not runs and offset == 0:
        raise NotFound(f"There is no pipeline {name!r}: none is loaded and none has runs.")
    now = store.clock()
    grid: dict[str, dict[str, str]] = {}
    for run in runs:
        grid[run.run_id] = {ti.task: ti.state
                            for ti in store.task_instances(run.run_id, mapped=False)}
    if entry is not None:
        graph = entry.pipeline.graph()
        upstream = {node.name: list(node.upstream) for node in graph}
    else:  # not loaded: the shape the latest run recorded
        upstream = dag_of(store.events(runs[0].run_id, limit=5)) if runs else {}
    tasks = list(upstream) or sorted({t for states in grid.values() for t in states})
    latest = grid[runs[0].run_id] if runs and offset == 0 else {}
    return versioned({
        **_head(site, name, store.paused()),
        "tasks": [{"name": t, "upstream": upstream.get(t, []), "state": latest.get(t, "")}
                  for t in tasks],
        "runs": [run_summary(r, now) for r in runs],
        "grid": grid, "offset": offset, "page": PAGE,
        "params": _params(entry.pipeline) if entry else [],
    })


def _params(pipe: Pipeline) -> list[dict[str, Any]]:
    found = []
    for name, spec in pipe.params.items():
        param = spec if isinstance(spec, Param) else Param(spec)
        found.append({
            "name": name, "default": None if param.secret else param.default,
            "kind": getattr(param.expected, "__name__", None), "min": param.min,
            "max": param.max, "secret": param.secret, "description": param.description,
            "choices": list(param.choices) if param.choices else None,
        })
    return found


def plan(site: Site, name: str) -> dict[str, Any]:
    pipe = site.pipeline(name)
    params = resolve_params(pipe.name, pipe.params, None)
    steps = plan_pipeline(pipe, site.workspace, params)
    return {"name": name, "steps": [
        {"task": s.task, "runs": s.runs, "reason": s.reason, "assumes": list(s.assumes)}
        for s in steps]}


def schedule(site: Site, name: str, count: int = 10) -> dict[str, Any]:
    pipe = site.pipeline(name)
    if pipe.schedule is None:
        return {"name": name, "schedule": None, "timezone": None, "next": []}
    intervals = next_fire_times(pipe.schedule, datetime.now(UTC), count)
    return {"name": name, "schedule": pipe.schedule.description,
            "timezone": pipe.schedule.timezone, "next": [
                {"fires_at": iv.local_end.isoformat(), "interval": str(iv),
                 "dst": describe_dst(pipe.schedule, iv)} for iv in intervals]}


def markdown(site: Site, name: str) -> dict[str, Any]:
    return {"name": name, "markdown": render(site.pipeline(name), "markdown")}


def runs(site: Site, pipeline_name: str | None = None, offset: int = 0) -> dict[str, Any]:
    if pipeline_name is not None:
        check_id("pipeline", pipeline_name)
    found = site.workspace.store.list_runs(pipeline_name, PAGE, max(0, offset))
    now = site.workspace.store.clock()
    return versioned({"runs": [run_summary(r, now) for r in found], "offset": offset,
                      "page": PAGE, "pipeline": pipeline_name})


# -- one run ------------------------------------------------------------------------------------

def run(site: Site, run_id: str) -> dict[str, Any]:
    record = site.run(run_id)
    store = site.workspace.store
    now = store.clock()
    entry = site.entries.get(record.pipeline)
    # A mapped task's items are read only if the run can have any: a run mapping 100,000
    # items has as many rows, and its page shows them as counts.
    maps = entry is None or any(node.spec.map_over for node in entry.pipeline.graph())
    everything = store.task_instances(run_id, mapped=maps)
    instances = [ti for ti in everything if ti.map_index < 0]
    mapped = Counter((ti.task, ti.state) for ti in everything if ti.map_index >= 0)
    attempts = store.attempts(run_id)
    upstream = dag_of(store.events(run_id, limit=5))
    if not upstream and entry is not None:  # not started yet: the pipeline's own shape
        upstream = {node.name: list(node.upstream) for node in entry.pipeline.graph()}
    if not instances:
        instances = [TaskInstanceRecord(run_id, task, -1, "") for task in upstream]
    critical = critical_path(instances, upstream)
    approvals = {a.task: a for a in store.approvals(run_id)}
    order = {name: i for i, name in enumerate(dag_order(upstream))}  # layer by layer
    tasks = []
    for ti in sorted(instances, key=lambda t: (order.get(t.task, len(order)), t.task)):
        items = {state: n for (task, state), n in mapped.items() if task == ti.task}
        decision = approvals.get(ti.task)
        tasks.append({
            "task": ti.task, "state": ti.state, "attempt": ti.attempt,
            "started_at": _iso(ti.started_at), "ended_at": _iso(ti.ended_at),
            "duration": (ti.ended_at or now) - ti.started_at if ti.started_at else None,
            "error": ti.error, "output": ti.output, "mapped": items or None,
            "upstream": upstream.get(ti.task, []),
            "decision": None if decision is None else {
                "approved": decision.approved, "by": decision.by, "at": _iso(decision.at),
                "reason": decision.reason},
        })
    return versioned({
        **run_summary(record, now), "params": mask_data(record.params), "target": record.target,
        "interval_start": record.interval_start, "interval_end": record.interval_end,
        "cancel_requested": record.cancel_requested, "tasks": tasks,
        "critical_path": critical,
        "attempts": [_attempt(a, with_traceback=False) for a in attempts if a.map_index < 0],
        "gates": [t["task"] for t in tasks if t["state"] == "awaiting_approval"],
        **person_actions(site, record, tasks),
    })


def _attempt(a: AttemptRecord, *, with_traceback: bool = True) -> dict[str, Any]:
    return {
        "task": a.task, "map_index": a.map_index, "attempt": a.attempt, "state": a.state,
        "started": a.started_at, "ended": a.ended_at,
        "started_at": _iso(a.started_at), "ended_at": _iso(a.ended_at),
        "duration": (a.ended_at - a.started_at) if a.ended_at else None, "error": a.error,
        "traceback": a.traceback if with_traceback else None, "checks": a.checks,
        "has_log": bool(a.log_path),
    }


def task(site: Site, run_id: str, task_name: str, *, logs: bool = False) -> dict[str, Any]:
    """A task instance; with ``logs``, each attempt's ``log`` holds its first piece."""
    record = site.run(run_id)
    check_id("task", task_name)
    store = site.workspace.store
    ti = next((t for t in store.task_instances(run_id, mapped=False) if t.task == task_name),
              None)
    if ti is None:
        raise NotFound(f"Run {run_id} has no task {task_name!r}.")
    attempts = [a for a in store.attempts(run_id, task_name) if a.map_index < 0]
    output = store.artifact(ti.output) if ti.output else None
    inputs = [a for a in (store.artifact(h) for h in (output.parents if output else ())) if a]
    shown = [_attempt(a) for a in attempts]
    if logs:
        for data, a in zip(shown, attempts, strict=True):
            data["log"] = _log_piece(site, a, 0) if a.log_path else None
    return {
        "run_id": run_id, "pipeline": record.pipeline, "task": task_name, "state": ti.state,
        "run_state": effective_state(record, store.clock()), "error": ti.error,
        "attempts": shown,
        "output": _artifact(output) if output else None,
        "files": ti.files, "inputs": [_artifact(a) for a in inputs],
        "gate_waiting": ti.state == "awaiting_approval",
        "gate_message": gate_message(site, record.pipeline, task_name),
    }


def log(site: Site, run_id: str, task_name: str, attempt: int, offset: int = 0,
        index: int = -1) -> dict[str, Any]:
    """A piece of one attempt's log from byte ``offset``: what a live tail asks for (of a
    mapped task's item ``index``, or of the task itself)."""
    site.run(run_id)
    check_id("task", task_name)
    found = [a for a in site.workspace.store.attempts(run_id, task_name)
             if a.map_index == index and a.attempt == attempt]
    if not found or not found[0].log_path:
        raise NotFound(f"Run {run_id} has no log for {task_name!r} "
                       f"{attempt_label(index, attempt)}.")
    return _log_piece(site, found[0], offset)


def _log_piece(site: Site, attempt: AttemptRecord, offset: int) -> dict[str, Any]:
    """From this host's log file, or, for an attempt that ran on another host, the copy its
    runner stored in the shared artifact store. A recorded path outside this store's logs is
    never opened: a record must not reach out."""
    assert attempt.log_path is not None
    path = Path(attempt.log_path).resolve()
    offset = max(0, offset)
    here = path.is_relative_to(site.workspace.logs.resolve()) and path.is_file()
    whole = None
    if not here and attempt.ended_at is not None:
        workspace = site.workspace
        whole = StoredLogs(workspace.store, workspace.artifacts, attempt.run_id).data(
            attempt.task, attempt.map_index, attempt.attempt)
    if whole is None and not path.is_relative_to(site.workspace.logs.resolve()):
        raise NotFound(f"The log of {attempt.task!r} attempt {attempt.attempt} is not under "
                       "the logs, nor stored with the artifacts.")
    chunk, size = b"", 0
    if whole is not None:
        chunk, size = whole[offset:offset + LOG_CHUNK], len(whole)
    elif here:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read(LOG_CHUNK)
            size = os.fstat(handle.fileno()).st_size
    text = chunk.decode("utf-8", errors="replace")
    offset += len(chunk)
    return {"text": text, "offset": offset, "size": size, "state": attempt.state,
            "done": attempt.ended_at is not None and offset >= size}


# -- artifacts and events -----------------------------------------------------------------------

def _artifact(a: ArtifactRecord) -> dict[str, Any]:
    return {"hash": a.hash, "pipeline": a.pipeline, "task": a.task, "name": a.name,
            "run_id": a.run_id, "serializer": a.serializer, "size": a.size,
            "created_at": _iso(a.created_at), "parents": list(a.parents)}


def artifacts(site: Site, pipeline_name: str | None = None) -> dict[str, Any]:
    if pipeline_name is not None:
        check_id("pipeline", pipeline_name)
    found = site.workspace.store.artifacts(pipeline_name, limit=100)
    return {"artifacts": [_artifact(a) for a in found], "pipeline": pipeline_name}


def artifact(site: Site, digest: str) -> dict[str, Any]:
    store = site.workspace.store
    record = site.artifact(digest)
    history = store.alias_history(record.pipeline, record.task, "active", record.name)
    versions = store.versions(record.pipeline, record.task, record.name, limit=50)
    tree = lineage_tree(store, record.hash, max_depth=20)
    return {
        **_artifact(record), "active": history[0].hash if history else None,
        "alias_history": [{"alias": c.alias, "hash": c.hash, "at": _iso(c.at), "by": c.by}
                          for c in history[:20]],
        "versions": [_artifact(v) for v in versions], "lineage": tree.to_dict(),
    }


def lineage_edges(tree: dict[str, Any]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The nodes and (parent, child) edges of a lineage tree (upstream direction)."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[tuple[str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        nodes.setdefault(node["hash"], node)
        for child in node["children"]:
            edges.append((child["hash"], node["hash"]))
            walk(child)

    walk(tree)
    return list(nodes.values()), edges


def events(site: Site, before: int | None = None, run_id: str | None = None
           ) -> dict[str, Any]:
    if run_id is not None:
        check_id("run", run_id)
    store = site.workspace.store
    found = store.events(run_id, before=before if before is not None else 2**62, limit=PAGE * 2)
    return {"events": [{"id": e.id, "run_id": e.run_id, "kind": e.kind, "ts": _iso(e.ts),
                        "task": e.task, "data": e.data} for e in found],
            "older": found[-1].id if len(found) == PAGE * 2 else None}


# -- task actions and gates (web/operate.py acts on them) ---------------------------------------

ACTION_EVENTS = ("task_cleared", "task_marked", "gate_decided", "run_queued", "items_retried")
"""What a person did to a run, shown on its page."""
ACTIONS_READ = 200
"""The run's newest events read for them: bounded, on the (run_id, id) index."""


def gate_message(site: Site, pipeline: str, task_name: str) -> str | None:
    """What the gate ``task_name`` asks, as its pipeline declares it; None if it is not a
    gate (or this UI did not load the pipeline)."""
    entry = site.entries.get(pipeline)
    node = entry.pipeline.graph().nodes.get(task_name) if entry is not None else None
    if node is None or node.spec.kind != "gate":
        return None
    return node.spec.message or ""


def person_actions(site: Site, record: RunRecord, tasks: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """For the run page: what each waiting gate asks, and the newest actions on the run
    (clears, marks, decisions, retries) with who and why."""
    found = site.workspace.store.events(record.run_id, before=2**62, limit=ACTIONS_READ)
    return {
        "gate_messages": {t["task"]: gate_message(site, record.pipeline, t["task"]) or ""
                          for t in tasks if t["state"] == "awaiting_approval"},
        "actions": [{"kind": e.kind, "ts": _iso(e.ts), "task": e.task,
                     "by": str(e.data.get("by") or ""), "reason": str(e.data.get("reason") or ""),
                     "detail": _action_detail(e.kind, e.data)}
                    for e in found if e.kind in ACTION_EVENTS],
    }


def _action_detail(kind: str, data: dict[str, Any]) -> str:
    if kind == "task_cleared":
        return "cleared " + ", ".join(str(t) for t in data.get("tasks", ()))
    if kind == "task_marked":
        return f"marked {data.get('state')} (was {data.get('was')}); run {data.get('run_state')}"
    if kind == "gate_decided":
        return "approved" if data.get("approved") else "rejected"
    if kind == "run_queued":
        return "run queued again"
    return kind.replace("_", " ")


__all__ = ["NotFound", "Site", "check_id"]
