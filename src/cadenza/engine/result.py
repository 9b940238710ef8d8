"""What a finished run gives back to Python: its state, and each task's state, attempts, output."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cadenza.artifacts.integrity import check
from cadenza.artifacts.serializers import deserialize
from cadenza.exceptions import CadenzaError
from cadenza.store.base import AttemptRecord, TaskInstanceRecord
from cadenza.workspace import Workspace


@dataclass
class TaskResult:
    name: str
    state: str
    attempts: list[AttemptRecord] = field(default_factory=list)
    error: str | None = None
    output: str | None = None
    """Content hash of the returned value."""
    files: dict[str, str] = field(default_factory=dict)
    items: int = 0
    """How many mapped instances the task had (0 for an unmapped task)."""


@dataclass
class RunResult:
    run_id: str
    pipeline: str
    state: str
    tasks: dict[str, TaskResult]
    workspace: Workspace

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for task in self.tasks.values():
            counts[task.state] = counts.get(task.state, 0) + 1
        return f"RunResult({self.run_id!r}, state={self.state!r}, tasks={counts})"

    def output(self, task: str) -> Any:
        """The value ``task`` returned in this run (a list, for a mapped task)."""
        if task not in self.tasks:
            raise CadenzaError(
                f"Run {self.run_id} has no task {task!r}; its tasks are {sorted(self.tasks)}."
            )
        digest = self.tasks[task].output
        if digest is None:
            raise CadenzaError(
                f"Task {task!r} ended {self.tasks[task].state} in run {self.run_id}, so it has "
                "no output."
            )
        return load_value(self.workspace, digest)

    def raise_for_state(self) -> RunResult:
        """Raise ``CadenzaError`` naming the failed tasks unless the run succeeded."""
        if not self.ok:
            bad = [f"{t.name} ({t.state}: {t.error})" for t in self.tasks.values()
                   if t.state in ("failed", "upstream_failed", "cancelled")]
            raise CadenzaError(f"Run {self.run_id} ended {self.state}: " + "; ".join(bad))
        return self


def load_value(workspace: Workspace, digest: str) -> Any:
    record = workspace.store.artifact(digest)
    if record is None:
        raise CadenzaError(f"No artifact has the hash {digest!r} in {workspace.home}.")
    if record.data is None:
        data = workspace.artifacts.get(digest)  # checked against its hash by the store
    else:
        data = check(digest, record.data, "the metadata store")
    return deserialize(record.serializer, data)


def build_result(
    workspace: Workspace, run_id: str, pipeline: str, state: str,
    instances: list[TaskInstanceRecord], made: Iterable[AttemptRecord] | None = None,
) -> RunResult:
    """``made``: the run's attempt records, if the caller holds them all; else they are read
    from the store."""
    attempts: dict[str, list[AttemptRecord]] = {}
    found = workspace.store.attempts(run_id) if made is None else sorted(
        made, key=lambda a: (a.started_at, a.task, a.map_index, a.attempt)
    )  # the store's order
    for attempt in found:
        attempts.setdefault(attempt.task, []).append(attempt)
    tasks: dict[str, TaskResult] = {}
    items: dict[str, int] = {}
    for ti in instances:
        if ti.map_index >= 0:
            items[ti.task] = items.get(ti.task, 0) + 1
            continue
        tasks[ti.task] = TaskResult(
            ti.task, ti.state, attempts.get(ti.task, []), ti.error, ti.output, ti.files
        )
    for name, count in items.items():
        tasks[name].items = count
    return RunResult(run_id, pipeline, state, tasks, workspace)
