"""Lineage: OpenLineage run events for every run and task, and the artifact lineage tree.

``OpenLineageHooks`` turns a run's events into OpenLineage 2-0-2 RunEvents: a job per task
(``<pipeline>.<task>``) and one per pipeline, START when a task starts running and COMPLETE,
FAIL or ABORT when it ends, with the upstream tasks' datasets as inputs and the task's own as
output. A transport delivers them (a JSON-lines file, an HTTP endpoint); a transport's failure
is reported through ``on_error`` and never reaches the run.

``lineage_tree`` walks the artifact records of a store, upstream (what an artifact was computed
from) or downstream (what was computed from it), for ``cadenza lineage``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from cadenza.engine.hooks import Hooks
from cadenza.exceptions import CadenzaError

if TYPE_CHECKING:
    from cadenza.engine.result import RunResult
    from cadenza.graph import Graph
    from cadenza.pipeline import Pipeline
    from cadenza.store.base import ArtifactRecord, Event, MetadataStore, RunRecord

logger = logging.getLogger("cadenza.lineage")


@cache
def default_producer() -> str:
    """Who made the events: cadenza has no canonical URL yet, so a URN with its version.
    Read when first needed: importlib.metadata costs a run that sends no lineage ~7 ms."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"urn:cadenza:{version('cadenza')}"
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "urn:cadenza:0"


SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACETS = "https://openlineage.io/spec/facets"
PARENT_FACET = f"{FACETS}/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet"
ERROR_FACET = f"{FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
NOMINAL_TIME_FACET = f"{FACETS}/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet"
JOB_TYPE_FACET = f"{FACETS}/2-0-2/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
RUN_NAMESPACE = uuid.UUID("6f1c3f0e-5d2b-4b8e-9a51-2c7d0c1e4a90")
"""Fixed, so a task instance's runId is the same in every event, process and resume."""
MAX_ERRORS = 100

TASK_END = {"success": "COMPLETE", "cached": "COMPLETE", "skipped": "COMPLETE",
            "failed": "FAIL", "upstream_failed": "FAIL", "cancelled": "ABORT"}
RUN_END = {"success": "COMPLETE", "failed": "FAIL", "cancelled": "ABORT"}
"""A run that ends ``waiting`` (on a gate) gets no end event: a resume finishes it."""

OnError = Callable[[BaseException], None]


def run_uuid(run_id: str, task: str | None = None, map_index: int = -1) -> str:
    """The OpenLineage runId of a cadenza run (``task=None``) or of one task instance."""
    name = run_id if task is None else f"{run_id}\x00{task}\x00{map_index}"
    return str(uuid.uuid5(RUN_NAMESPACE, name))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


class _Reports:
    """Keeps a transport's or hook's errors (the first MAX_ERRORS) and passes each on."""

    def __init__(self, on_error: OnError | None) -> None:
        self.on_error = on_error
        self.errors: list[str] = []

    def _failed(self, error: BaseException) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{type(error).__name__}: {error}")
        if self.on_error is None:
            logger.warning("OpenLineage: %s: %s", type(error).__name__, error)
            return
        try:
            self.on_error(error)
        except Exception:  # a broken error callback must not break the run either
            logger.exception("OpenLineage: the on_error callback raised")


# -- transports ------------------------------------------------------------------------------


class Transport(Protocol):
    def emit(self, event: dict[str, Any]) -> None:
        """Send one RunEvent; never raise (report errors instead)."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until what was emitted is sent; False if ``timeout`` ran out first."""
        ...

    def close(self) -> None: ...


class NullTransport:
    """Drops every event."""

    def emit(self, event: dict[str, Any]) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass


class MemoryTransport(NullTransport):
    """Keeps every event, as JSON would give it back, in ``events``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(json.loads(json.dumps(event)))


class FileTransport(_Reports, NullTransport):
    """Appends each event to ``path`` as one JSON line. Each line is one ``write`` to a file
    opened for appending, so runs in several threads or processes can share a file."""

    def __init__(self, path: str | Path, *, on_error: OnError | None = None) -> None:
        super().__init__(on_error)
        self.path = Path(path)
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        try:
            line = json.dumps(event, separators=(",", ":")) + "\n"
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(line)
        except Exception as exc:
            self._failed(exc)


class HttpTransport(_Reports):
    """POSTs each event as JSON to ``url`` (e.g. Marquez' ``/api/v1/lineage``).

    Sending happens on a background thread, so a slow or hanging endpoint costs the run loop
    nothing; ``flush`` waits for what is queued. A failed POST (refused, timed out, or a 4xx/5xx
    answer) goes to ``on_error`` and is not retried. Past ``max_pending`` unsent events, new
    ones are dropped and reported.
    """

    def __init__(self, url: str, timeout: float = 5.0, *, headers: Mapping[str, str] | None = None,
                 on_error: OnError | None = None, max_pending: int = 10_000) -> None:
        super().__init__(on_error)
        if urlsplit(url).scheme not in ("http", "https"):
            raise CadenzaError(
                f"OpenLineage endpoint {url!r} is not an http(s) URL. Give one like "
                "'http://localhost:5000/api/v1/lineage'."
            )
        if not timeout > 0:
            raise CadenzaError(
                f"HttpTransport timeout must be more than 0 seconds, not {timeout!r}."
            )
        self.url, self.timeout, self.max_pending = url, timeout, max_pending
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._pending: deque[bytes] = deque()
        self._unsent = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def emit(self, event: dict[str, Any]) -> None:
        problem: str | None = None
        try:
            body = json.dumps(event, separators=(",", ":")).encode()
        except Exception as exc:
            self._failed(exc)
            return
        with self._cond:
            if self._closed:
                problem = "the transport is closed; the event was dropped"
            elif self._unsent >= self.max_pending:
                problem = f"{self._unsent} events are waiting to be sent; the event was dropped"
            else:
                self._pending.append(body)
                self._unsent += 1
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, daemon=True,
                                                    name="cadenza-openlineage")
                    self._thread.start()
                self._cond.notify_all()
        if problem is not None:
            self._failed(CadenzaError(f"OpenLineage endpoint {self.url}: {problem}."))

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                body = self._pending.popleft()
            try:
                self._post(body)
            except Exception as exc:
                self._failed(exc)
            finally:
                with self._cond:
                    self._unsent -= 1
                    self._cond.notify_all()

    def _post(self, body: bytes) -> None:
        import urllib.error  # here: with http.client and ssl it costs ~10 ms to import
        import urllib.request

        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response's socket
            raise CadenzaError(
                f"OpenLineage endpoint {self.url} answered {exc.code} {exc.reason}."
            ) from None

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._unsent:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float | None = 10.0) -> None:
        """Send what is queued (for up to ``timeout`` seconds), drop the rest, and stop."""
        self.flush(timeout)
        with self._cond:
            dropped = len(self._pending)
            self._pending.clear()
            self._unsent -= dropped
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if dropped:
            self._failed(CadenzaError(
                f"OpenLineage endpoint {self.url}: {dropped} events were not sent in time."
            ))


# -- the hooks -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Job:
    """What every event of one task carries, built once per run."""

    job: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    facets: dict[str, Any]
    """Run facets: the parent facet pointing at the pipeline's run."""
    item_facets: dict[str, Any] | None = None
    """The same for a mapped item, whose parent is its task's run; made when first needed."""


class OpenLineageHooks(_Reports, Hooks):
    """Sends OpenLineage RunEvents for a run, its tasks and (``items=True``) mapped items.

    Each task instance is an OpenLineage run of the job ``<pipeline>.<task>`` in ``namespace``,
    with a runId derived from the cadenza run id, task and map index (``run_uuid``), so its
    START and its end share it, also across processes. A task that ends without having run
    (cached, upstream_failed, cancelled while waiting) gets a START just before its end, as the
    spec asks for one of each per run; a skipped task that never ran gets none. An attempt after
    a retry sends RUNNING. Task datasets live in ``dataset_namespace`` (default
    ``cadenza://<home>``) and are named ``<pipeline>.<task>``.

    Make one per run (it keeps the run's state); a transport may be shared by many.
    """

    def __init__(
        self, transport: Transport, *, namespace: str = "cadenza", home: str | Path | None = None,
        dataset_namespace: str | None = None, producer: str | None = None, items: bool = True,
        flush_timeout: float = 10.0, on_error: OnError | None = None,
    ) -> None:
        super().__init__(on_error)
        self.transport, self.namespace = transport, namespace
        self.producer = producer if producer is not None else default_producer()
        if dataset_namespace is None:
            where = Path(home).resolve().as_posix() if home is not None else namespace
            dataset_namespace = f"cadenza://{where}"
        self.dataset_namespace, self.items, self.flush_timeout = (
            dataset_namespace, items, flush_timeout
        )
        self._run: RunRecord | None = None
        self._run_job: dict[str, Any] = {}
        self._run_facets: dict[str, Any] = {}
        self._jobs: dict[str, _Job] = {}
        self._open: dict[tuple[str, int], str] = {}
        """Task instances that sent START and no end yet, with their runId."""
        self._failed_tasks: list[str] = []
        self._started_at: tuple[str, float] = ("", 0.0)
        """The run_started event's run id and time."""

    # hooks: each catches everything, so lineage can never fail a run

    @classmethod
    def for_run(cls, transport: Transport, pipe: Pipeline, home: str | Path) -> OpenLineageHooks:
        """Hooks for one run of ``pipe``: a transport's failure becomes the run's
        delivery_error event, as a notifier's does."""
        return cls(transport, home=home,
                   on_error=lambda exc: pipe.report_delivery_error(repr(transport), exc))

    def before_run(self, run: RunRecord, graph: Graph) -> None:
        try:
            self._begin(run, graph)
        except Exception as exc:
            self._failed(exc)

    def after_event(self, event: Event) -> None:
        try:
            self._on_event(event)
        except Exception as exc:
            self._failed(exc)

    def after_run(self, result: RunResult) -> None:
        try:
            if not self.transport.flush(self.flush_timeout):
                self._failed(CadenzaError(
                    f"OpenLineage events of run {result.run_id} were not all sent within "
                    f"{self.flush_timeout:g}s; they are still being sent."
                ))
        except Exception as exc:
            self._failed(exc)
        self._run, self._jobs = None, {}
        self._open.clear()

    # building events

    def _begin(self, run: RunRecord, graph: Graph) -> None:
        self._run, self._open, self._failed_tasks = run, {}, []
        pipeline = run.pipeline
        self._run_job = self._job(pipeline, "DAG")
        self._run_facets = {}
        if run.interval_start:
            nominal = {"_producer": self.producer, "_schemaURL": NOMINAL_TIME_FACET,
                       "nominalStartTime": _iso(datetime.fromisoformat(run.interval_start)
                                                .timestamp())}
            if run.interval_end:
                nominal["nominalEndTime"] = _iso(
                    datetime.fromisoformat(run.interval_end).timestamp())
            self._run_facets["nominalTime"] = nominal
        parent = self._parent(run_uuid(run.run_id), pipeline)
        self._jobs = {
            node.name: _Job(
                self._job(f"{pipeline}.{node.name}", "TASK"),
                [self._dataset(pipeline, up) for up in node.inputs],
                [self._dataset(pipeline, node.name)],
                {**self._run_facets, "parent": parent},
            )
            for node in graph
        }
        run_id, ts = self._started_at
        self._send("START", ts if run_id == run.run_id else time.time(), run_uuid(run.run_id),
                   self._run_job, self._run_facets)

    def _job(self, name: str, kind: str) -> dict[str, Any]:
        facet = {"_producer": self.producer, "_schemaURL": JOB_TYPE_FACET,
                 "processingType": "BATCH", "integration": "CADENZA", "jobType": kind}
        return {"namespace": self.namespace, "name": name, "facets": {"jobType": facet}}

    def _dataset(self, pipeline: str, task: str) -> dict[str, Any]:
        return {"namespace": self.dataset_namespace, "name": f"{pipeline}.{task}"}

    def _parent(self, run_id: str, job: str) -> dict[str, Any]:
        return {"_producer": self.producer, "_schemaURL": PARENT_FACET,
                "run": {"runId": run_id}, "job": {"namespace": self.namespace, "name": job}}

    def _error(self, message: str) -> dict[str, Any]:
        return {"_producer": self.producer, "_schemaURL": ERROR_FACET, "message": message,
                "programmingLanguage": "PYTHON"}

    def _on_event(self, event: Event) -> None:
        run = self._run
        if run is None or event.run_id != run.run_id:
            if event.kind == "run_started":  # it comes before before_run, which sends START
                self._started_at = (event.run_id, event.ts)
            return
        task, kind = event.task, event.kind
        if task is None:
            end = RUN_END.get(event.data.get("state", ""))
            if kind == "run_finished" and end is not None:
                facets = self._run_facets
                if end == "FAIL":
                    names = ", ".join(self._failed_tasks[:20]) or "none"
                    facets = {**facets, "errorMessage": self._error(
                        f"Run {run.run_id} of pipeline {run.pipeline!r} failed; tasks that "
                        f"failed or could not run: {names}.")}
                self._send(end, event.ts, run_uuid(run.run_id), self._run_job, facets)
            return
        job = self._jobs.get(task)
        index = event.map_index
        if job is None or (index >= 0 and not self.items):
            return
        key = (task, index)
        if kind in ("running", "awaiting_approval"):
            run_id = self._open.get(key)
            if run_id is None:
                run_id = self._open[key] = run_uuid(run.run_id, task, index)
                self._task_event("START", event, job, run_id)
            else:  # another attempt, after a retry
                self._task_event("RUNNING", event, job, run_id)
            return
        end = TASK_END.get(kind)
        if end is None:
            return
        run_id = self._open.pop(key, None)
        if run_id is None:
            if kind == "skipped":
                return
            run_id = run_uuid(run.run_id, task, index)
            self._task_event("START", event, job, run_id)
        if end == "FAIL" and index < 0:
            self._failed_tasks.append(task)
        self._task_event(end, event, job, run_id)

    def _task_event(self, kind: str, event: Event, job: _Job, run_id: str) -> None:
        assert self._run is not None and event.task is not None
        facets = job.facets
        if event.map_index >= 0:  # an item's parent is its task's run
            if job.item_facets is None:
                job.item_facets = {**facets, "parent": self._parent(
                    run_uuid(self._run.run_id, event.task), job.job["name"])}
            facets = job.item_facets
        if kind == "FAIL":
            message = event.data.get("error") or (
                "An upstream task failed, so this one could not run."
                if event.kind == "upstream_failed" else f"Task {event.task!r} failed.")
            facets = {**facets, "errorMessage": self._error(str(message))}
        self._send(kind, event.ts, run_id, job.job, facets, job.inputs, job.outputs)

    def _send(self, kind: str, ts: float, run_id: str, job: dict[str, Any],
              facets: dict[str, Any], inputs: list[dict[str, Any]] | None = None,
              outputs: list[dict[str, Any]] | None = None) -> None:
        body: dict[str, Any] = {
            "eventType": kind, "eventTime": _iso(ts), "producer": self.producer,
            "schemaURL": SCHEMA_URL, "run": {"runId": run_id, "facets": facets}, "job": job,
        }
        if inputs is not None:
            body["inputs"], body["outputs"] = inputs, outputs or []
        try:
            self.transport.emit(body)
        except Exception as exc:  # a transport should report, not raise; this one raised
            self._failed(exc)


# -- the artifact lineage tree ---------------------------------------------------------------


@dataclass
class LineageNode:
    """An artifact in a lineage tree; ``children`` are its parents (upstream) or what was
    computed from it (downstream)."""

    hash: str
    pipeline: str | None = None
    task: str | None = None
    name: str | None = None
    run_id: str | None = None
    created_at: float | None = None
    children: list[LineageNode] = field(default_factory=list)
    note: Literal["", "missing", "repeated", "cut"] = ""
    """``missing``: not in the store; ``repeated``: its lineage is shown above already;
    ``cut``: deeper than ``max_depth``."""

    @classmethod
    def of(cls, record: ArtifactRecord) -> LineageNode:
        return cls(record.hash, record.pipeline, record.task, record.name, record.run_id,
                   record.created_at)

    def to_dict(self) -> dict[str, Any]:
        return {"hash": self.hash, "pipeline": self.pipeline, "task": self.task,
                "name": self.name, "run_id": self.run_id, "created_at": self.created_at,
                "note": self.note, "children": [c.to_dict() for c in self.children]}


def find_artifact(store: MetadataStore, hash: str, scan_limit: int = 10_000) -> ArtifactRecord:
    """The artifact with this hash, or with this unique hash prefix among the newest
    ``scan_limit`` artifacts."""
    record = store.artifact(hash)
    if record is not None:
        return record
    found = [a for a in store.artifacts(limit=scan_limit) if hash and a.hash.startswith(hash)]
    if len(found) == 1:
        return found[0]
    if found:
        raise CadenzaError(
            f"{len(found)} artifacts have hashes starting {hash!r}: "
            + ", ".join(a.hash[:16] for a in found[:5]) + ". Give more of the hash."
        )
    raise CadenzaError(
        f"No artifact has the hash {hash!r}. `cadenza status RUN --json` lists each task's "
        "output hash."
    )


def lineage_tree(
    store: MetadataStore, artifact_hash: str,
    direction: Literal["upstream", "downstream"] = "upstream", *,
    scan_limit: int = 10_000, max_depth: int = 100,
) -> LineageNode:
    """The lineage of an artifact (a hash or a unique prefix of one) as a tree.

    Upstream follows each record's ``parents``. Downstream has no index to follow: it inverts
    the parents of the newest ``scan_limit`` artifacts, so what was made from an artifact
    among older ones is not shown.
    """
    if direction not in ("upstream", "downstream"):
        raise CadenzaError(f"direction must be 'upstream' or 'downstream', not {direction!r}.")
    root = find_artifact(store, artifact_hash, scan_limit)
    records: dict[str, ArtifactRecord | None] = {root.hash: root}
    made_from: dict[str, list[ArtifactRecord]] = {}
    if direction == "downstream":
        for record in sorted(store.artifacts(limit=scan_limit),
                             key=lambda a: (a.created_at, a.task, a.name)):
            for parent in record.parents:
                made_from.setdefault(parent, []).append(record)

    def lookup(digest: str) -> ArtifactRecord | None:
        if digest not in records:
            records[digest] = store.artifact(digest)
        return records[digest]

    expanded: set[str] = set()

    def build(record: ArtifactRecord, depth: int, path: frozenset[str]) -> LineageNode:
        node = LineageNode.of(record)
        if record.hash in expanded:
            node.note = "repeated"
            return node
        if depth >= max_depth:
            node.note = "cut"
            return node
        expanded.add(record.hash)
        if direction == "upstream":
            nexts: list[ArtifactRecord | str] = [lookup(p) or p for p in record.parents]
        else:
            nexts = list(made_from.get(record.hash, []))
        for item in nexts:
            if isinstance(item, str):
                node.children.append(LineageNode(item, note="missing"))
            elif item.hash not in path:  # a content hash can reappear; never loop on it
                node.children.append(build(item, depth + 1, path | {item.hash}))
        return node

    return build(root, 0, frozenset({root.hash}))


def format_tree(node: LineageNode, *, short: int = 12) -> str:
    """The tree as text, one artifact per line: hash prefix, pipeline.task, output name
    (when not the return value) and run."""

    def label(n: LineageNode) -> str:
        if n.note == "missing":
            return f"{n.hash[:short]}  (not in this store)"
        name = "" if n.name in (None, "return") else f" [{n.name}]"
        text = f"{n.hash[:short]}  {n.pipeline}.{n.task}{name}  run {n.run_id}"
        return text + {"": "", "repeated": "  (see above)", "cut": "  (deeper lineage cut)",
                       "missing": ""}[n.note]

    lines = [label(node)]

    def walk(n: LineageNode, prefix: str) -> None:
        for i, child in enumerate(n.children):
            last = i == len(n.children) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{label(child)}")
            walk(child, prefix + ("    " if last else "│   "))

    walk(node, "")
    return "\n".join(lines)


__all__ = [
    "FileTransport", "HttpTransport", "LineageNode", "MemoryTransport", "NullTransport",
    "OpenLineageHooks", "Transport", "find_artifact", "format_tree", "lineage_tree", "run_uuid",
]
