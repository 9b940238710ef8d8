"""Prometheus metrics for runs, tasks and the scheduler, kept in a registry of their own.

One ``Metrics`` owns one ``CollectorRegistry`` (never prometheus_client's global one), so
tests, and several schedulers in one process, never collide. Long-running processes serve it
over HTTP (``serve``); a one-off run writes it once as a node_exporter textfile
(``write_textfile``). ``MetricsHooks`` feeds it from one run's events, in the run loop.

prometheus_client is imported when a ``Metrics`` is made, not with this module: it brings
http.server and friends (~10 ms), which a run without metrics never needs.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from threading import Thread
from types import TracebackType
from typing import TYPE_CHECKING

from cadenza.engine.hooks import Hooks
from cadenza.engine.states import TaskState
from cadenza.exceptions import CadenzaError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry, Histogram

    from cadenza.engine.result import RunResult
    from cadenza.graph import Graph
    from cadenza.store.base import Event, RunRecord

INF = math.inf
DURATION_BUCKETS = (0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, INF)
"""Task attempts last from milliseconds to hours."""
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, INF)
TICK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                INF)
ENDS = frozenset({"success", "failed", "up_for_retry", "cancelled", "skipped", "cached"})
"""Event kinds that end an attempt (a cached instance may end without one)."""
CHECK_RESULTS = {"check_passed": "passed", "check_failed": "failed", "check_warned": "warned"}


class Metrics:
    """Every cadenza metric, in ``self.registry``. Labels: ``pipeline``, and ``task`` (never a
    map index: a mapped task's items count under their task)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # prometheus_client adds the _total suffix to counters itself.
        self.runs = Counter("cadenza_runs", "Runs finished, by final state.",
                            ["pipeline", "state"], registry=r)
        self.task_duration = Histogram(
            "cadenza_task_duration_seconds",
            "Task attempts from running to their end, by how the attempt ended.",
            ["pipeline", "task", "state"], buckets=DURATION_BUCKETS, registry=r,
        )
        self.task_retries = Counter("cadenza_task_retries", "Attempts that failed and will retry.",
                                    ["pipeline", "task"], registry=r)
        self.queue_wait = Histogram(
            "cadenza_task_queue_wait_seconds",
            "Time from ready (queued) to running: waiting for a worker, pool or commit.",
            ["pipeline"], buckets=WAIT_BUCKETS, registry=r,
        )
        self.cache_hits = Counter("cadenza_cache_hits", "Task instances an earlier output served.",
                                  ["pipeline", "task"], registry=r)
        self.check_results = Counter("cadenza_check_results", "Data quality check results.",
                                     ["pipeline", "task", "check", "result"], registry=r)
        self.scheduler_tick = Histogram(
            "cadenza_scheduler_tick_seconds", "Time one scheduler tick takes.",
            buckets=TICK_BUCKETS, registry=r,
        )
        self.tasks_running = Gauge("cadenza_tasks_running", "Task instances running now.",
                                   ["pipeline"], registry=r)

    def hooks(self, pipeline: str) -> MetricsHooks:
        """Hooks feeding these metrics from one run of ``pipeline``; make one per run."""
        return MetricsHooks(self, pipeline)

    def observe_tick(self, seconds: float) -> None:
        """The scheduler reports how long one tick took."""
        self.scheduler_tick.observe(seconds)

    def text(self) -> bytes:
        """The metrics in Prometheus' text format (for a ``/metrics`` route of one's own)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "127.0.0.1") -> MetricsServer:
        """Serve ``/metrics`` on ``addr:port`` (``port=0``: any free port) from a daemon
        thread until the returned server's ``shutdown()``."""
        from prometheus_client import start_http_server

        try:
            httpd, thread = start_http_server(port, addr, registry=self.registry)
        except OSError as exc:
            raise CadenzaError(
                f"Cannot serve metrics on {addr}:{port}: {exc.strerror or exc}. Choose another "
                "port (--metrics-port), or stop what is listening there."
            ) from exc
        return MetricsServer(httpd, thread)

    def write_textfile(self, path: str | Path) -> None:
        """Write the metrics to ``path`` atomically (a temporary file, then a rename), for
        node_exporter's textfile collector, which reads only files ending in ``.prom``."""
        from prometheus_client import write_to_textfile

        write_to_textfile(str(path), self.registry)


class MetricsServer:
    """A running metrics endpoint; ``shutdown()`` (or ``close()``, or leaving a ``with``
    block) stops it and frees its port."""

    def __init__(self, httpd: WSGIServer, thread: Thread) -> None:
        self._httpd, self._thread = httpd, thread

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._httpd.server_address[0])
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/metrics"

    def shutdown(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    close = shutdown

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown()


class _TaskSeries:
    """One task's labelled series, looked up once rather than on every event."""

    __slots__ = ("_duration", "_labels", "cache_hits", "durations", "retries")

    def __init__(self, metrics: Metrics, pipeline: str, task: str) -> None:
        self.retries = metrics.task_retries.labels(pipeline, task)
        self.cache_hits = metrics.cache_hits.labels(pipeline, task)
        self._duration, self._labels = metrics.task_duration, (pipeline, task)
        # Made on first use: six end states of empty buckets per task would be noise.
        self.durations: dict[str, Histogram] = {}

    def observe(self, state: str, seconds: float) -> None:
        child = self.durations.get(state)
        if child is None:
            child = self.durations[state] = self._duration.labels(*self._labels, state)
        child.observe(seconds)


class MetricsHooks(Hooks):
    """Updates ``metrics`` from one run of ``pipeline``.

    Durations come from event timestamps: one observation per attempt, from its ``running``
    event to the event that ends it, labelled with that event's kind (so a retried attempt is
    observed as ``up_for_retry``). Queue wait is timed from the QUEUED to the RUNNING
    transition. The parent instance of a mapped task stands for its items, which are counted
    instead: it adds no duration, queue wait or running count, and a cache hit only when it
    was reused whole (no items ran).
    """

    def __init__(self, metrics: Metrics, pipeline: str) -> None:
        self.metrics, self.pipeline = metrics, pipeline
        self._series: dict[str, _TaskSeries] = {}
        self._running = metrics.tasks_running.labels(pipeline)
        self._wait = metrics.queue_wait.labels(pipeline)
        self._started: dict[tuple[str, int], float] = {}
        """Running instances: when their attempt started (event time)."""
        self._queued: dict[tuple[str, int], float] = {}
        self._mapped: frozenset[str] = frozenset()
        self._expanded: set[str] = set()
        """Mapped tasks whose items were made in this run."""

    def _task(self, task: str) -> _TaskSeries:
        series = self._series.get(task)
        if series is None:
            series = self._series[task] = _TaskSeries(self.metrics, self.pipeline, task)
        return series

    def before_run(self, run: RunRecord, graph: Graph) -> None:
        self._mapped = frozenset(n.name for n in graph if n.spec.map_over is not None)

    def after_transition(self, task: str, map_index: int, old: TaskState, new: TaskState
                         ) -> None:
        if new is TaskState.QUEUED:
            if map_index >= 0 or task not in self._mapped:
                self._queued[(task, map_index)] = time.monotonic()
        elif old is TaskState.QUEUED and new is TaskState.RUNNING:
            queued = self._queued.pop((task, map_index), None)
            if queued is not None:
                self._wait.observe(time.monotonic() - queued)

    def after_event(self, event: Event) -> None:
        kind, task = event.kind, event.task
        if task is None:
            if kind == "run_finished":
                self.metrics.runs.labels(self.pipeline, event.data.get("state", "")).inc()
            return
        parent = event.map_index < 0 and task in self._mapped
        if kind == "running":
            if parent:
                self._expanded.add(task)
            else:
                self._started[(task, event.map_index)] = event.ts
                self._running.inc()
        elif kind in ENDS:
            series = self._task(task)
            started = self._started.pop((task, event.map_index), None) if not parent else None
            if started is not None:
                self._running.dec()
                series.observe(kind, max(0.0, event.ts - started))
            if kind == "up_for_retry":
                series.retries.inc()
            elif kind == "cached" and not (parent and task in self._expanded):
                series.cache_hits.inc()
        else:
            result = CHECK_RESULTS.get(kind)
            if result is not None:
                check = str(event.data.get("check", ""))
                self.metrics.check_results.labels(self.pipeline, task, check, result).inc()

    def after_run(self, result: RunResult) -> None:
        # A run that ended with instances still marked running (it should not) must not leave
        # them counted as running forever.
        for _ in self._started:
            self._running.dec()
        self._started.clear()
        self._queued.clear()
        self._expanded.clear()


__all__ = ["Metrics", "MetricsHooks", "MetricsServer"]
