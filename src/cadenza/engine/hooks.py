"""Hooks: the engine calls these after the fact; progress displays and alerts subclass them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cadenza.engine.states import TaskState

if TYPE_CHECKING:
    from cadenza.engine.result import RunResult
    from cadenza.graph import Graph
    from cadenza.store.base import Event, RunRecord


class Hooks:
    """No-op base: override what you need. A hook must be quick; it runs in the run loop."""

    def before_run(self, run: RunRecord, graph: Graph) -> None:
        pass

    def after_transition(
        self, task: str, map_index: int, old: TaskState, new: TaskState
    ) -> None:
        pass

    def after_event(self, event: Event) -> None:
        """Every event the run records (state changes, gates, SLA misses), as it is made."""

    def after_run(self, result: RunResult) -> None:
        pass


ALERT_KINDS = {
    "failed": "on_failure", "up_for_retry": "on_retry", "sla_missed": "on_sla_miss",
}


class Callbacks(Hooks):
    """Calls a pipeline's ``on_failure``, ``on_retry``, ``on_success`` and ``on_sla_miss`` with
    the event. A callback that raises is reported through ``failed``; the run goes on."""

    def __init__(self, callbacks: dict[str, Callable[[Event], object]],
                 failed: Callable[[str, BaseException], None]) -> None:
        self.callbacks, self.failed = callbacks, failed

    def after_event(self, event: Event) -> None:
        name = ALERT_KINDS.get(event.kind)
        if event.kind == "run_finished":
            name = {"success": "on_success", "failed": "on_failure"}.get(event.data["state"])
        callback = self.callbacks.get(name or "")
        if callback is not None:
            try:
                callback(event)
            except Exception as exc:  # an alert must never fail the run it reports on
                self.failed(name or "", exc)
