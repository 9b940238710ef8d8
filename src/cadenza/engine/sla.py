"""SLA deadlines of one run: the pipeline's and each task's, counted from the end of the run's
data interval (or, for a manual run, its creation), checked as the loop goes."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from cadenza.engine.journal import Instance
from cadenza.engine.states import SUCCEEDED, TaskState
from cadenza.graph import Graph
from cadenza.pipeline import Pipeline
from cadenza.store.base import RunRecord


@dataclass(frozen=True, slots=True)
class Miss:
    task: str | None
    """None: the whole run's SLA."""
    deadline: float
    sla: float
    late: list[str]
    """The tasks not done by the deadline."""


class SlaClock:
    def __init__(self, pipe: Pipeline, graph: Graph, run: RunRecord) -> None:
        self.pipe, self.graph = pipe, graph
        start = (datetime.fromisoformat(run.interval_end).timestamp()
                 if run.interval_end else run.created_at)
        self.heap = [(start + n.spec.sla, n.name) for n in graph if n.spec.sla is not None]
        if pipe.sla is not None:
            self.heap.append((start + pipe.sla, ""))
        heapq.heapify(self.heap)

    def next(self) -> float | None:
        """The epoch time of the next deadline to check, if any."""
        return self.heap[0][0] if self.heap else None

    def missed(self, instance: Callable[[str], Instance]) -> Iterator[Miss]:
        """The deadlines passed since the last call that some task did not meet."""
        now = time.time()
        while self.heap and self.heap[0][0] <= now:
            deadline, task = heapq.heappop(self.heap)
            late = [t for t in ([task] if task else self.graph.order)
                    if _late(instance(t), deadline)]
            if late:
                sla = self.graph.nodes[task].spec.sla if task else self.pipe.sla
                assert sla is not None  # only tasks and pipelines with an SLA are queued
                yield Miss(task or None, deadline, sla, late)


def _late(ti: Instance, deadline: float) -> bool:
    """Not done by ``deadline``: still going, or done after it (an inline task blocks the
    loop, so a deadline may be looked at only once the task is over)."""
    if ti.state is TaskState.SKIPPED:
        return False
    return ti.state not in SUCCEEDED or (ti.ended or time.time()) > deadline
