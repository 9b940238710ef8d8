"""Sensors and triggers: start a run when something happens, not at a time.

A sensor is checked every ``every`` seconds by the scheduler. It gets its cursor (what it saw
last, kept in the store as JSON) and answers with a ``SensorResult``: run or not, with which
params, and the new cursor. The run's id is derived from the sensor and its new cursor, so a
scheduler killed between creating the run and saving the cursor creates the same id again on
restart, and the store refuses the duplicate.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cadenza._durations import parse_duration
from cadenza.exceptions import InvalidOptionError

if TYPE_CHECKING:
    from cadenza.workspace import Workspace


@dataclass
class SensorResult:
    run: bool = True
    """Start a run."""
    params: dict[str, Any] = field(default_factory=dict)
    """Params for that run, over the pipeline's defaults."""
    cursor: Any = None
    """What to remember for next time (JSON data); None keeps the old cursor."""


class Sensor:
    """Base class: override ``check``. ``name`` keys the cursor, so keep it stable."""

    name: str = "sensor"
    every: float = 30.0

    def check(self, cursor: Any, workspace: Workspace) -> SensorResult | None:
        raise NotImplementedError

    def run_id(self, pipeline: str, result: SensorResult) -> str:
        digest = hashlib.sha256(
            json.dumps([self.name, result.cursor, result.params], sort_keys=True,
                       default=str).encode()
        ).hexdigest()
        return f"{pipeline}-{self.name}-{digest[:12]}"


def _every(owner: str, every: object) -> float:
    try:
        return parse_duration(every)
    except ValueError as exc:
        raise InvalidOptionError(
            f"{owner} has every={every!r}: {exc}.", option="every", value=every
        ) from None


class FileSensor(Sensor):
    """Fires when files matching ``pattern`` (a glob, relative to the project directory)
    appear or change; the run gets ``files``, the new paths, as a param if it declares one."""

    def __init__(self, pattern: str, *, every: str | float | timedelta = "30s",
                 name: str | None = None) -> None:
        if not isinstance(pattern, str) or not pattern.strip():
            raise InvalidOptionError(
                f"FileSensor needs a glob pattern like 'landing/*.csv', got {pattern!r}.",
                option="pattern", value=pattern,
            )
        self.pattern = pattern
        self.every = _every(f"FileSensor({pattern!r})", every)
        self.name = name or "files_" + hashlib.sha256(pattern.encode()).hexdigest()[:8]

    def check(self, cursor: Any, workspace: Workspace) -> SensorResult | None:
        seen: dict[str, list[float]] = dict(cursor or {})
        now: dict[str, list[float]] = {}
        for path in sorted(workspace.root.glob(self.pattern)):
            if path.is_file():
                stat = path.stat()
                now[str(path.relative_to(workspace.root))] = [stat.st_mtime, stat.st_size]
        new = sorted(p for p, sig in now.items() if seen.get(p) != sig)
        if not new:
            return None
        return SensorResult(True, {"files": new}, now)


class FunctionSensor(Sensor):
    """A user's function, from ``@pipe.sensor``: see ``Pipeline.sensor``."""

    def __init__(self, fn: Callable[..., Any], every: object, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.every = _every(f"Sensor {self.name!r}", every)
        self._wants_cursor = "cursor" in inspect.signature(fn).parameters

    def check(self, cursor: Any, workspace: Workspace) -> SensorResult | None:
        answer = self.fn(cursor) if self._wants_cursor else self.fn()
        if answer is None or answer is False:
            return None
        if answer is True:
            return SensorResult()
        if isinstance(answer, SensorResult):
            return answer if answer.run or answer.cursor is not None else None
        if isinstance(answer, Mapping):
            return SensorResult(True, dict(answer))
        raise TypeError(
            f"Sensor {self.name!r} returned {answer!r}; return None or False (no run), True, "
            "a dict of run params, or a SensorResult."
        )


class NewVersionTrigger(Sensor):
    """Fires when another pipeline's task stores a new version of its output."""

    def __init__(self, source: str, every: str | float | timedelta = "30s") -> None:
        pipeline, dot, task = source.rpartition(".")
        if not dot or not pipeline or not task:
            raise InvalidOptionError(
                f"on_new_version({source!r}): name the artifact as 'pipeline.task'.",
                option="triggers", value=source,
            )
        self.pipeline, self.task = pipeline, task
        self.every = _every(f"on_new_version({source!r})", every)
        self.name = f"after_{pipeline}_{task}".replace(".", "_").replace("-", "_")

    def check(self, cursor: Any, workspace: Workspace) -> SensorResult | None:
        entries = workspace.store.cache_entries(self.pipeline, self.task)
        latest = next((e.output for e in entries if e.output is not None), None)
        if latest is None or latest == cursor:
            return None
        return SensorResult(True, {}, latest)


def on_new_version(source: str, every: str | float | timedelta = "30s") -> NewVersionTrigger:
    """A trigger for ``Pipeline(triggers=[...])``: run when ``'pipeline.task'`` has a new
    output version."""
    return NewVersionTrigger(source, every)


def cursor_key(pipeline: str, sensor: Sensor) -> str:
    return f"sensor:{pipeline}:{sensor.name}"
