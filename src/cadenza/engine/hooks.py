"""Hooks: the engine calls these after the fact; progress displays and alerts subclass them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cadenza.engine.states import TaskState

if TYPE_CHECKING:
    from cadenza.engine.result import RunResult
    from cadenza.graph import Graph
    from cadenza.store.base import RunRecord


class Hooks:
    """No-op base: override what you need. A hook must be quick; it runs in the run loop."""

    def before_run(self, run: RunRecord, graph: Graph) -> None:
        pass

    def after_transition(
        self, task: str, map_index: int, old: TaskState, new: TaskState
    ) -> None:
        pass

    def after_run(self, result: RunResult) -> None:
        pass
