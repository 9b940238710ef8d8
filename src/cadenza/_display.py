"""Rich output for the CLI: live run progress, run summaries, tables of tasks, and what went
wrong (failures, retries, data checks, rejected gates) in full.

Everything that comes from users and tasks (names, errors, check descriptions) is added to
``Text`` as plain strings, never parsed as markup."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.text import Text

from cadenza._words import plural
from cadenza.engine.hooks import Hooks
from cadenza.engine.result import RunResult
from cadenza.engine.states import TaskState
from cadenza.graph import Graph
from cadenza.store.base import AttemptRecord, RunRecord, TaskInstanceRecord

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table

COLORS = {
    "success": "green", "cached": "cyan", "failed": "red", "upstream_failed": "dark_orange",
    "running": "yellow", "queued": "blue", "pending": "grey50", "skipped": "grey62",
    "up_for_retry": "magenta", "cancelled": "red3", "awaiting_approval": "bright_blue",
    "interrupted": "dark_orange", "waiting": "bright_blue", "warned": "yellow",
    "passed": "green",
}
ORDER = ("failed", "upstream_failed", "cancelled", "up_for_retry", "awaiting_approval",
         "running", "queued", "pending", "success", "cached", "skipped")
"""States in the order a grouped summary lists them: what needs a look first."""
NOT_A_TERMINAL_HEIGHT = 40
"""Rows a summary may take when the output is not a terminal (a CI log, a pipe)."""
LISTED = 10
"""Tasks a grouped summary names per kind of problem before pointing to `cadenza status`."""
PROGRESS_EVERY = 5.0
"""Seconds between count lines when the progress is not drawn live (not a terminal)."""
FAILURE_LINES = 20
"""Failure and retry lines the non-terminal progress prints before it only counts them."""


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


def screen_rows(console: Console) -> int:
    """How many lines of output fit before the summary's head scrolls away."""
    return console.size.height if console.is_terminal else NOT_A_TERMINAL_HEIGHT


class Progress(Hooks):
    """Counts task states as the run moves. On a terminal it draws them live; elsewhere it
    prints a bounded log: a line per failure or retry (the first FAILURE_LINES) and a count
    line every PROGRESS_EVERY seconds, never a line per task."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.states: dict[str, TaskState] = {}
        self.items: Counter[str] = Counter()
        self.running: dict[str, float] = {}
        self.started = time.monotonic()
        self.next_count = self.started + PROGRESS_EVERY
        self.failures = 0
        self.run_id = ""
        self.closed = False
        self._lock = threading.Lock()

    def before_run(self, run: RunRecord, graph: Graph) -> None:
        self.run_id = run.run_id
        self.states = {name: TaskState.PENDING for name in graph.order}
        self.started = time.monotonic()
        self.next_count = self.started + PROGRESS_EVERY
        if self.console.is_terminal:
            from rich.live import Live  # not imported for -q, --json or a pipe

            # No stdout/stderr redirection: while a run is active, sys.stdout is the router of
            # engine/logs.py, and a Rich FileProxy wrapped by (or wrapping) it writes to itself.
            self.live = Live(self, console=self.console, refresh_per_second=8, transient=True,
                             redirect_stdout=False, redirect_stderr=False)
            self.live.start()
        else:
            self.console.print(f"run {run.run_id}: {plural(len(graph), 'task')}")

    def after_transition(self, task: str, map_index: int, old: TaskState, new: TaskState
                         ) -> None:
        with self._lock:
            if map_index >= 0:
                self.items[new.value] += 1
                self.items[old.value] -= 1
            else:
                self.states[task] = new
                if new is TaskState.RUNNING:
                    self.running[task] = time.monotonic()
                else:
                    self.running.pop(task, None)
        if self.live is not None or self.closed:
            return
        if new is TaskState.FAILED or new is TaskState.UP_FOR_RETRY:
            self.failures += 1
            if self.failures <= FAILURE_LINES:
                name = task if map_index < 0 else f"{task}[{map_index}]"
                self.console.print(Text.assemble(f"  {name} ", styled(new.value)))
            elif self.failures == FAILURE_LINES + 1:
                self.console.print("  (more failures and retries: counted, not listed)")
        now = time.monotonic()
        if now >= self.next_count:
            self.next_count = now + PROGRESS_EVERY
            self.console.print(self._counts(now - self.started))

    def after_run(self, result: RunResult) -> None:
        self.closed = True
        if self.live is not None:
            self.live.stop()

    def _counts(self, elapsed: float) -> Text:
        with self._lock:
            counts = Counter(state.value for state in self.states.values())
            items = {k: v for k, v in self.items.items() if v > 0}
        line = Text(f"  {elapsed:.0f}s:")
        for state, count in sorted(counts.items()):
            line.append("  ")
            line.append_text(styled(f"{state} {count}"))
        if items:
            line.append("  mapped items:")
            for state, count in sorted(items.items()):
                line.append("  ")
                line.append_text(styled(f"{state} {count}"))
        return line

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


# -- what a run's tasks did -------------------------------------------------------------------


@dataclass
class Row:
    """One task of a run, as the summary and `cadenza status` show it."""

    task: str
    state: str
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    items: int = 0
    checks: list[dict[str, Any]] = field(default_factory=list)
    """The data checks of the task's last attempt."""
    earlier_error: str | None = None
    """What made the last retried attempt fail, when the task took more than one."""


def _row(task: str, state: str, error: str | None, items: int,
         attempts: list[AttemptRecord], started: float | None, ended: float | None) -> Row:
    own = [a for a in attempts if a.map_index < 0]
    last = own[-1] if own else None
    earlier = next((a.error for a in reversed(own[:-1]) if a.error), None)
    return Row(task, state, len(own), started, ended, error, items,
               list(last.checks) if last is not None else [], earlier)


def rows_of_result(result: RunResult) -> list[Row]:
    """The rows of a run that just ended, from what the runner holds (no store reads)."""
    rows = []
    for name, t in result.tasks.items():
        started = min((a.started_at for a in t.attempts), default=None)
        ended = max((a.ended_at or 0.0 for a in t.attempts), default=None) or None
        rows.append(_row(name, t.state, t.error, t.items, t.attempts, started, ended))
    return rows


def rows_of_records(instances: Iterable[TaskInstanceRecord],
                    attempts: Iterable[AttemptRecord]) -> list[Row]:
    """The rows of a run as the store keeps it, in the order its tasks started."""
    by_task: dict[str, list[AttemptRecord]] = {}
    for attempt in attempts:  # oldest first
        by_task.setdefault(attempt.task, []).append(attempt)
    parents: dict[str, TaskInstanceRecord] = {}
    items: Counter[str] = Counter()
    for ti in instances:
        if ti.map_index < 0:
            parents[ti.task] = ti
        else:
            items[ti.task] += 1
    order = sorted(parents, key=lambda n: parents[n].started_at or float("inf"))
    return [_row(n, parents[n].state, parents[n].error, items[n], by_task.get(n, []),
                 parents[n].started_at, parents[n].ended_at) for n in order]


def _verdict(check: dict[str, Any]) -> str:
    if check["passed"]:
        return "passed"
    return "failed" if check["severity"] == "error" else "warned"


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _note(row: Row) -> str:
    parts = []
    if row.checks:
        tally = Counter(_verdict(c) for c in row.checks)
        parts.append("checks: " + ", ".join(f"{n} {word}" for word, n in sorted(tally.items())))
    if row.items:
        parts.append(f"{row.items} mapped items")
    if row.error and not any(not c["passed"] and c["severity"] == "error" for c in row.checks):
        parts.append(_first_line(row.error))  # (a failed check's error repeats the check)
    return "; ".join(parts)


def task_table(rows: Iterable[Row], width: int = 80) -> Table:
    """One line per task. A note too long for a line of ``width`` ends in an ellipsis at the
    edge: ``problems`` prints the whole of it below the table."""
    cells = [(row.task, row.state, str(row.attempts),
              duration(row.started, row.ended) if row.started else "-", _note(row))
             for row in rows]
    from rich.table import Table  # not imported for -q or --json

    heads = ("task", "state", "attempts", "duration", "note")
    widths = [max([len(head), *(len(c[i]) for c in cells)]) for i, head in enumerate(heads)]
    # Too wide: the note alone gives way (the others keep their width, the names their words).
    table = Table(show_edge=False, header_style="bold", expand=sum(widths) + 13 > width)
    for head in heads[:-1]:
        table.add_column(head, no_wrap=True)
    table.add_column("note", no_wrap=True, overflow="ellipsis", ratio=1)
    for task, state, attempts, took, note in cells:
        table.add_row(task, styled(state), attempts, took, note)
    return table


def _indented(text: str, by: int = 6) -> Text:
    return Text("\n".join(" " * by + line for line in text.rstrip().splitlines()))


def check_lines(checks: Iterable[dict[str, Any]], lead: str = "", indent: int = 4
                ) -> list[Text]:
    """Each check's verdict on a line after ``lead``; its description, in full, below it,
    ``indent`` spaces in."""
    lines = []
    for check in checks:
        lines.append(Text.assemble(lead, "check ", str(check["check"]), " ",
                                   styled(_verdict(check))))
        if check.get("description"):
            lines.append(_indented(str(check["description"]), indent))
    return lines


def problems(rows: Iterable[Row], most: int | None = None) -> list[Text]:
    """What a person should read, in full: each failed task's error, each failed or warned
    data check with its description, each task that needed retries. ``most``: name at most
    this many tasks per kind (the rest are counted)."""
    failed: list[list[Text]] = []
    checks: list[list[Text]] = []
    retried: list[list[Text]] = []
    for row in rows:
        bad = [c for c in row.checks if not c["passed"]]
        if bad:
            checks.append(check_lines(bad, f"  {row.task}: ", 6))
        if row.state == "failed" and row.error and not any(
                c["severity"] == "error" for c in bad):  # else the check said it all
            failed.append([Text.assemble("  ", row.task, " ", styled("failed"), ":"),
                           _indented(row.error)])
        if row.attempts > 1:
            line = Text.assemble("  ", row.task, f": {row.attempts} attempts, ended ",
                                 styled(row.state))
            lines = [line]
            if row.earlier_error:
                lines.append(_indented("before: " + _first_line(row.earlier_error)))
            retried.append(lines)
    out: list[Text] = []
    for title, groups in (("failed", failed), ("data checks", checks), ("retried", retried)):
        if not groups:
            continue
        out.append(Text(f"{title}:", style="bold"))
        shown = groups if most is None else groups[:most]
        for lines in shown:
            out.extend(lines)
        if len(groups) > len(shown):
            out.append(Text(f"  ... and {len(groups) - len(shown)} more"))
    return out


def grouped(rows: list[Row]) -> Text:
    """The tasks counted by state, most urgent first."""
    counts = Counter(row.state for row in rows)
    line = Text(f"{plural(len(rows), 'task')}:")
    for state in sorted(counts, key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s)):
        line.append("  ")
        line.append_text(styled(f"{state} {counts[state]}"))
    return line


def summary(rows: list[Row], run_id: str, height: int, width: int = 80
            ) -> list[RenderableType]:
    """A run's tasks and what went wrong. Past a screenful (``height`` lines) the tasks are
    counted by state instead of listed, and a few of each kind of problem are named."""
    details = problems(rows)
    if len(rows) + len(details) + 6 <= height:
        return [task_table(rows, width), *details]
    return [grouped(rows), *problems(rows, LISTED),
            Text(f"every task: cadenza status {run_id}")]


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
