"""Rich output for the CLI: live run progress, run summaries, tables of runs and tasks."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cadenza.engine.hooks import Hooks
from cadenza.engine.result import RunResult
from cadenza.engine.states import TERMINAL, TaskState
from cadenza.graph import Graph
from cadenza.store.base import RunRecord, TaskInstanceRecord

COLORS = {
    "success": "green", "cached": "cyan", "failed": "red", "upstream_failed": "dark_orange",
    "running": "yellow", "queued": "blue", "pending": "grey50", "skipped": "grey62",
    "up_for_retry": "magenta", "cancelled": "red3", "awaiting_approval": "bright_blue",
    "interrupted": "dark_orange", "waiting": "bright_blue",
}
def styled(state: str) -> Text:
    return Text(state, style=COLORS.get(state, ""))


def duration(start: float | None, end: float | None) -> str:
    if start is None:
        return "-"
    seconds = (end or time.time()) - start
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class Progress(Hooks):
    """Counts task states as the run moves; draws them live on a terminal, else logs lines."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.states: dict[str, TaskState] = {}
        self.items: Counter[str] = Counter()
        self.items_done = 0
        self.running: dict[str, float] = {}
        self.started = time.monotonic()
        self.run_id = ""
        self._lock = threading.Lock()

    def before_run(self, run: RunRecord, graph: Graph) -> None:
        self.run_id = run.run_id
        self.states = {name: TaskState.PENDING for name in graph.order}
        self.started = time.monotonic()
        if self.console.is_terminal:
            # No stdout/stderr redirection: while a run is active, sys.stdout is the router of
            # engine/logs.py, and a Rich FileProxy wrapped by (or wrapping) it writes to itself.
            self.live = Live(self, console=self.console, refresh_per_second=8, transient=True,
                             redirect_stdout=False, redirect_stderr=False)
            self.live.start()
        else:
            self.console.print(f"run {run.run_id}: {len(graph)} tasks")

    def after_transition(self, task: str, map_index: int, old: TaskState, new: TaskState
                         ) -> None:
        with self._lock:
            if map_index >= 0:
                self.items[new.value] += 1
                self.items[old.value] -= 1
                return
            self.states[task] = new
            if new is TaskState.RUNNING:
                self.running[task] = time.monotonic()
            else:
                self.running.pop(task, None)
        if self.live is None and new in TERMINAL:
            self.console.print(Text.assemble(f"  {task} ", styled(new.value)))

    def after_run(self, result: RunResult) -> None:
        if self.live is not None:
            self.live.stop()

    def __rich__(self) -> RenderableType:
        with self._lock:
            counts = Counter(state.value for state in self.states.values())
            running = sorted(self.running.items(), key=lambda kv: kv[1])
            items = {k: v for k, v in self.items.items() if v > 0}
        elapsed = time.monotonic() - self.started
        head = Text.assemble(("cadenza ", "bold"), f"{self.run_id}  ", (f"{elapsed:.1f}s", "bold"))
        line = Text("  ")
        for state, count in sorted(counts.items()):
            line.append_text(styled(f"{state} {count}"))
            line.append("  ")
        parts: list[RenderableType] = [head, line]
        if items:
            mapped = Text("  mapped items: ")
            for state, count in sorted(items.items()):
                mapped.append_text(styled(f"{state} {count}"))
                mapped.append("  ")
            parts.append(mapped)
        now = time.monotonic()
        for task, since in running[:8]:
            parts.append(Text.assemble("  ", ("▶ ", "yellow"), task, f"  {now - since:.1f}s"))
        if len(running) > 8:
            parts.append(Text(f"  ... and {len(running) - 8} more running"))
        return Group(*parts)


def task_table(instances: list[TaskInstanceRecord], attempts: dict[str, int],
               order: list[str] | None = None,
               checks: dict[str, list[dict[str, Any]]] | None = None) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in ("task", "state", "attempts", "duration", "note"):
        table.add_column(column)
    parents = {ti.task: ti for ti in instances if ti.map_index < 0}
    items = Counter(ti.task for ti in instances if ti.map_index >= 0)
    names = order or sorted(parents, key=lambda n: parents[n].started_at or float("inf"))
    for name in names:
        ti = parents.get(name)
        if ti is None:
            continue
        note = (ti.error or "").strip().splitlines()[0][:100] if ti.error else ""
        if items.get(name):
            note = f"{items[name]} mapped items" + (f"; {note}" if note else "")
        results = (checks or {}).get(name)
        if results:
            tally = Counter("passed" if c["passed"] else
                            "failed" if c["severity"] == "error" else "warned" for c in results)
            summary = ", ".join(f"{n} {word}" for word, n in sorted(tally.items()))
            note = f"checks: {summary}" + (f"; {note}" if note else "")
        table.add_row(name, styled(ti.state), str(attempts.get(name, 0)),
                      duration(ti.started_at, ti.ended_at) if ti.started_at else "-", note)
    return table


def result_json(result: RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id, "pipeline": result.pipeline, "state": result.state,
        "tasks": {
            name: {
                "state": t.state, "attempts": len(t.attempts), "error": t.error,
                "output": t.output, "files": t.files, "items": t.items,
            }
            for name, t in result.tasks.items()
        },
    }
