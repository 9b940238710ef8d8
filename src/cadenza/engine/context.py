"""``ctx``: what a running task may ask about its run (id, interval, params, attempt, logger)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadenza.exceptions import CadenzaError

TASK_LOGGER = "cadenza.task"
METRIC_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,99}")
MAX_METRICS = 200
"""Metrics one attempt may log: they travel with its result and are stored as one event."""


class RecordingParams(Mapping[str, Any]):
    """Run params that remember which ones the task read, so the cache keys only on those."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        value = self._values[key]
        self.read.add(key)
        return value

    def __iter__(self) -> Iterator[str]:
        self.read.update(self._values)
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"params({dict(self._values)!r})"


@dataclass
class TaskContext:
    run_id: str
    pipeline: str
    task: str
    map_index: int
    attempt: int
    params: RecordingParams
    home: Path
    root: Path
    """The project directory: relative paths in ``outputs=`` and ``inputs=`` start here."""
    outputs: dict[str, Path] = field(default_factory=dict)
    logical_date: str | None = None
    interval_start: str | None = None
    interval_end: str | None = None
    inputs: dict[str, str | None] = field(default_factory=dict)
    """The content hash (the version) of each upstream output this task received."""
    metrics: dict[str, float] = field(default_factory=dict)
    """What `log_metric` recorded in this attempt, by name (the last value of each)."""

    def log_metric(self, name: str, value: float) -> None:
        """Record a number about this attempt (a model's ``auc``, a row count): it is stored
        with the attempt's events and shown on the task's and its output's pages. A name
        logged twice keeps its last value."""
        if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
            raise CadenzaError(
                f"ctx.log_metric got the name {name!r}; name a metric with 1 to 100 letters, "
                "digits and '_.-/', e.g. 'roc_auc'.")
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value):
            raise CadenzaError(
                f"ctx.log_metric({name!r}, ...) got {value!r}; a metric is a finite number: "
                "pass float(...) of it.")
        if name not in self.metrics and len(self.metrics) >= MAX_METRICS:
            raise CadenzaError(
                f"ctx.log_metric({name!r}, ...): this attempt already logged {MAX_METRICS} "
                "metrics, the most one attempt keeps; log fewer, or return a table instead.")
        self.metrics[name] = float(value)
        self.log.info("metric %s = %s", name, value)

    @property
    def log(self) -> logging.Logger:
        """A logger writing to this attempt's log file."""
        return logging.getLogger(f"{TASK_LOGGER}.{self.task}")


_current: ContextVar[TaskContext] = ContextVar("cadenza_task_context")


class _ContextProxy:
    """Module-level ``ctx`` that reads the context of the task running in this thread."""

    def __getattr__(self, name: str) -> Any:
        try:
            context = _current.get()
        except LookupError:
            raise CadenzaError(
                f"ctx.{name} is only available while a task runs; call the function through "
                "pipe.run() or `cadenza run`, or pass the value as an argument in a test."
            ) from None
        return getattr(context, name)

    def __repr__(self) -> str:
        context = _current.get(None)
        return f"<ctx {context.task!r} run={context.run_id}>" if context else "<ctx (no task)>"


ctx: Any = _ContextProxy()


def set_context(context: TaskContext) -> Any:
    return _current.set(context)


def reset_context(token: Any) -> None:
    _current.reset(token)
