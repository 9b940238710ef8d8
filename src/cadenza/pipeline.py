"""Pipeline and its decorators: turn plain functions into TaskSpec data, checking as they come.

Checks that need one task only (names, options) run at decoration; checks that need the
whole graph (unknown inputs, cycles) run when the graph is built, by ``Pipeline.graph()``,
which every command and ``Pipeline.run`` call before anything runs.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import secrets
import sys
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from cadenza._durations import parse_duration
from cadenza.engine.retry import NO_RETRY, Retry
from cadenza.engine.trigger import RULES
from cadenza.exceptions import DuplicateTaskError, InvalidOptionError, ParamError
from cadenza.params import as_param

if TYPE_CHECKING:
    from cadenza.alerts import AlertRouter
    from cadenza.engine.result import RunResult
    from cadenza.graph import Graph
    from cadenza.schedule.cron import DateLike, Schedule
    from cadenza.schedule.sensors import Sensor
    from cadenza.store.base import Event

F = TypeVar("F", bound=Callable[..., Any])
CachePolicy = bool | Literal["interval"]
TaskKind = Literal["python", "shell", "branch", "gate"]

TRIGGER_RULES = frozenset(RULES)
_AIRFLOW_ONLY = {
    "none_failed_or_skipped": "Airflow renamed it 'none_failed_min_one_success'; use that",
    "dummy": "Airflow renamed it 'always'; use that",
    "all_done_setup_success": "cadenza has no setup/teardown tasks; use 'all_done'",
    "all_done_min_one_success": "cadenza does not have it yet; 'one_success' or 'all_done' "
                                "may do",
}
"""Airflow trigger rules cadenza does not take, with what to use instead."""
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PIPELINE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")
CONTEXT_ARG = "ctx"
"""A function parameter with this name receives the task context, unless a task has the name."""


@dataclass(frozen=True)
class TaskSpec:
    """Everything cadenza knows about one task, as plain data."""

    name: str
    kind: TaskKind
    fn: Callable[..., Any] | None
    args: tuple[str, ...]
    """The function's parameter names: upstream tasks, params or ``ctx``, resolved by the graph."""
    optional_args: frozenset[str]
    """Parameters with a default value: they need not name a task or a param."""
    after: tuple[str, ...] = ()
    retry: Retry = NO_RETRY
    timeout: float | None = None
    cache: CachePolicy = True
    version: str | None = None
    trigger_rule: str = "all_success"
    outputs: Mapping[str, str] = field(default_factory=dict)
    input_files: tuple[str, ...] = ()
    map_over: str | None = None
    command: str | None = None
    shell_inputs: tuple[str, ...] = ()
    """For shell tasks: ``inputs=`` entries, each a task name or a file path."""
    description: str = ""
    message: str = ""
    """For gates: the question put to the person who approves."""
    pool: str | None = None
    """A named pool whose slots limit how many of its tasks run at once."""
    priority: int = 0
    """Among ready tasks, higher runs first; ties go in definition order."""
    sla: float | None = None
    """Seconds after the run's interval end (or its creation) by which the task should be done."""
    alerts: tuple[Any, ...] = ()
    """Notifiers (or Routes) for this task's alerts, besides the pipeline's."""
    resources: Mapping[str, float] = field(default_factory=dict)
    """Worker resources an attempt holds while it runs, like {"GPU": 1}: the dask executor
    runs it only on a worker that has them (others ignore them)."""


_OPTIONS = (
    "retries", "timeout", "cache", "version", "trigger_rule", "after", "outputs", "inputs",
    "map_over", "pool", "priority", "sla", "alerts", "resources",
)


def counts(value: object) -> bool:
    """A whole number of 1 or more (not a bool): slots, runs or tasks at a time."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_options(options: Mapping[str, Any], where: str, pipeline: str, task: str | None) -> None:
    for key in options:
        if key not in _OPTIONS:
            raise InvalidOptionError(
                f"{where} got an unknown option {key!r}. Valid options are: "
                + ", ".join(_OPTIONS) + ".",
                option=key, value=options[key], pipeline=pipeline, task=task,
            )


def _coerce(pipeline: str, task: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate task options (a task's own, or the pipeline's defaults when ``task`` is None)
    and turn them into TaskSpec fields."""
    out: dict[str, Any] = {}
    where = f"Task {task!r}" if task is not None else f"Pipeline {pipeline!r} defaults"

    def bad(option: str, value: object, fix: str) -> InvalidOptionError:
        return InvalidOptionError(
            f"{where} has an invalid {option}={value!r}: {fix}.",
            option=option, value=value, pipeline=pipeline, task=task,
        )

    def names(option: str, value: object, fix: str) -> tuple[str, ...]:
        if isinstance(value, str | Path):
            return (str(value),)
        if not isinstance(value, Iterable) or not all(isinstance(v, str | Path) for v in value):
            raise bad(option, value, fix)
        return tuple(str(v) for v in value)

    if "retries" in options:
        value = options["retries"]
        if isinstance(value, Retry):
            out["retry"] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise bad("retries", value, "give 0 or a positive number of retries")
            out["retry"] = Retry(value)
        else:
            raise bad("retries", value, "give a number of retries or Retry(attempts, backoff=...)")
    if "timeout" in options and options["timeout"] is not None:
        value = options["timeout"]
        try:
            out["timeout"] = parse_duration(value)
        except ValueError as exc:
            raise bad("timeout", value, str(exc)) from None
    if "cache" in options:
        value = options["cache"]
        if not (value is True or value is False or value == "interval"):
            raise bad("cache", value, "give True, False or 'interval'")
        out["cache"] = value
    if "version" in options and options["version"] is not None:
        out["version"] = str(options["version"])
    if "trigger_rule" in options:
        value = options["trigger_rule"]
        if not isinstance(value, str) or value not in TRIGGER_RULES:
            hint = _AIRFLOW_ONLY.get(value) if isinstance(value, str) else None
            raise bad("trigger_rule", value, hint or "choose one of " + ", ".join(RULES))
        out["trigger_rule"] = value
    if "after" in options:
        out["after"] = names("after", options["after"], "give a list of task names")
    if "outputs" in options:
        value = options["outputs"]
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and NAME.match(k) and isinstance(v, str | Path)
            for k, v in value.items()
        ):
            raise bad("outputs", value, "give a dict of {name: file path}")
        from cadenza.engine.outputs import check_template  # it imports this module

        for path in value.values():
            if (why := check_template(str(path))) is not None:
                raise bad("outputs", value, f"path {str(path)!r} cannot be filled in: {why}")
        out["outputs"] = {k: str(v) for k, v in value.items()}
    if "inputs" in options:
        out["input_files"] = names("inputs", options["inputs"], "give a list of file paths")
    if "map_over" in options and options["map_over"] is not None:
        out["map_over"] = options["map_over"]
    if "pool" in options and options["pool"] is not None:
        if not isinstance(options["pool"], str):
            raise bad("pool", options["pool"], "give the name of a pool in Pipeline(pools=...)")
        out["pool"] = options["pool"]
    if "sla" in options and options["sla"] is not None:
        try:
            out["sla"] = parse_duration(options["sla"])
        except ValueError as exc:
            raise bad("sla", options["sla"], str(exc)) from None
    if "alerts" in options and options["alerts"] is not None:
        value = options["alerts"]
        if not isinstance(value, list | tuple) or not all(
            hasattr(n, "notify") or hasattr(n, "notifiers") for n in value
        ):
            raise bad("alerts", value, "give a list of notifiers, like [WebhookNotifier(url)]")
        out["alerts"] = tuple(value)
    if "priority" in options:
        value = options["priority"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("priority", value, "give a whole number; higher runs first")
        out["priority"] = value
    if "resources" in options and options["resources"] is not None:
        value = options["resources"]
        if not isinstance(value, Mapping) or not value or not all(
            isinstance(k, str) and k and isinstance(v, int | float)
            and not isinstance(v, bool) and v > 0 for k, v in value.items()
        ):
            raise bad("resources", value, 'give a dict of {name: amount above 0}, like '
                      '{"GPU": 1}')
        out["resources"] = dict(value)
    return out


_REGISTRY: weakref.WeakValueDictionary[str, Pipeline] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class CheckSpec:
    """A data-quality check on one task's output."""

    name: str
    fn: Callable[[Any], Any]
    severity: Literal["error", "warn"]
    """error: a failure fails the task and blocks its downstream; warn: recorded and alerted."""


class CheckFunction:
    """A picklable stand-in for a check, resolved in the worker (like TaskFunction)."""

    def __init__(self, token: str, task: str, index: int) -> None:
        self.token, self.task, self.index = token, task, index

    def __call__(self, value: Any) -> Any:
        pipe = _REGISTRY[self.token]
        return pipe.checks[self.task][self.index].fn(value)


class TaskFunction:
    """A picklable stand-in for a task's function, resolved in the worker process.

    Workers are forked after the pipeline is built, so they hold it in their registry; a
    function defined inside another function (which pickle cannot name) still reaches them.
    """

    def __init__(self, token: str, task: str) -> None:
        self.token, self.task = token, task

    def __call__(self, **kwargs: Any) -> Any:
        pipe = _REGISTRY.get(self.token)
        if pipe is None:
            raise RuntimeError(
                f"Task {self.task!r}: this worker process was started before its pipeline "
                "was defined. Create the executor after building the pipeline."
            )
        fn = pipe.tasks[self.task].fn
        assert fn is not None
        return fn(**kwargs)


def _source(frame: FrameType | None) -> tuple[str, str, str] | None:
    """Where a pipeline is being made, if at the top of a module file (directly, or through
    a helper or two): its module, the file and the hash of the file's bytes, read now, while
    the module runs, so that it is the version this process imported even if the file is
    edited later. None inside a function (a test, a notebook cell)."""
    for _ in range(4):
        if frame is None:
            return None
        if frame.f_code.co_name == "<module>":
            module, file = frame.f_globals.get("__name__"), frame.f_globals.get("__file__")
            if not isinstance(module, str) or not isinstance(file, str) \
                    or not file.endswith(".py"):
                return None
            try:
                data = Path(file).read_bytes()
            except OSError:
                return None
            return module, str(Path(file).resolve()), hashlib.sha256(data).hexdigest()
        frame = frame.f_back
    return None


class Pipeline:
    """A named DAG of tasks, with default options for them and run parameters."""

    def __init__(
        self,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
        description: str = "",
        pools: Mapping[str, int] | None = None,
        max_active_tasks: int | None = None,
        schedule: str | None = None,
        every: str | timedelta | None = None,
        timezone: str = "UTC",
        start: DateLike | None = None,
        end: DateLike | None = None,
        catchup: bool = False,
        max_active_runs: int = 1,
        sensors: Iterable[Sensor] = (),
        triggers: Iterable[Sensor] = (),
        sla: str | float | timedelta | None = None,
        on_failure: Callable[[Event], object] | None = None,
        on_retry: Callable[[Event], object] | None = None,
        on_success: Callable[[Event], object] | None = None,
        on_sla_miss: Callable[[Event], object] | None = None,
        alerts: Iterable[Any] = (),
        alert_dedup: str | float = "10m",
    ) -> None:
        if not isinstance(name, str) or not PIPELINE_NAME.match(name):
            raise InvalidOptionError(
                f"Pipeline name {name!r} is invalid: use letters, digits, '_', '.' or '-' "
                "(at most 100, not starting with '.' or '-').",
                option="name", value=name,
            )
        self.name = name
        self.params: dict[str, Any] = dict(params or {})
        for key in self.params:
            if not isinstance(key, str) or not NAME.match(key) or key == CONTEXT_ARG:
                raise InvalidOptionError(
                    f"Pipeline {name!r} has a param named {key!r}; a param name must be a "
                    f"Python identifier other than {CONTEXT_ARG!r} (which gives a task its "
                    "context).", option="params", value=key, pipeline=name,
                )
        for key, value in self.params.items():
            spec = as_param(value)
            if spec.kind is not None and not isinstance(spec.kind, type):
                raise InvalidOptionError(
                    f"Param {key!r} of pipeline {name!r} has kind={spec.kind!r}; give a type "
                    "such as int, float, str or bool.", option="params", value=spec.kind,
                    pipeline=name,
                )
            try:
                spec.check(key, spec.default)
            except ParamError as exc:
                raise InvalidOptionError(
                    f"Pipeline {name!r}: the default of param {key!r} breaks its own rules: "
                    f"{exc}", option="params", value=key, pipeline=name,
                ) from None
        self.pools = dict(pools or {})
        for pool, slots in self.pools.items():
            if not isinstance(pool, str) or not counts(slots):
                raise InvalidOptionError(
                    f"Pipeline {name!r} has pool {pool!r} with {slots!r} slots; give each pool "
                    "a name and a whole number of slots, 1 or more.",
                    option="pools", value={pool: slots}, pipeline=name,
                )
        if max_active_tasks is not None and not counts(max_active_tasks):
            raise InvalidOptionError(
                f"Pipeline {name!r} has max_active_tasks={max_active_tasks!r}; give 1 or more, "
                "or None for no limit beyond the executor's workers.",
                option="max_active_tasks", value=max_active_tasks, pipeline=name,
            )
        self.max_active_tasks = max_active_tasks
        self.schedule: Schedule | None = None
        """When the scheduler runs it: a series of data intervals, or None (manual only)."""
        if (schedule, every, timezone, start, end) != (None, None, "UTC", None, None):
            from cadenza.schedule.cron import parse_schedule  # ~10 ms: only when scheduled

            self.schedule = parse_schedule(schedule, every, timezone, start, end)
        if not isinstance(catchup, bool):
            raise InvalidOptionError(
                f"Pipeline {name!r} has catchup={catchup!r}; give True (run every missed "
                "interval) or False (only the latest).", option="catchup", value=catchup,
                pipeline=name,
            )
        self.catchup = catchup
        if not counts(max_active_runs):
            raise InvalidOptionError(
                f"Pipeline {name!r} has max_active_runs={max_active_runs!r}; give 1 or more.",
                option="max_active_runs", value=max_active_runs, pipeline=name,
            )
        self.max_active_runs = max_active_runs
        try:
            self.sla = None if sla is None else parse_duration(sla)
        except ValueError as exc:
            raise InvalidOptionError(
                f"Pipeline {name!r} has sla={sla!r}: {exc}.", option="sla", value=sla,
                pipeline=name,
            ) from None
        self.callbacks: dict[str, Callable[[Event], object]] = {}
        """on_failure, on_retry, on_success, on_sla_miss: each gets the event."""
        for key, callback in (("on_failure", on_failure), ("on_retry", on_retry),
                              ("on_success", on_success), ("on_sla_miss", on_sla_miss)):
            if callback is None:
                continue
            if not callable(callback):
                raise InvalidOptionError(
                    f"Pipeline {name!r} has {key}={callback!r}; give a function taking the "
                    "event.", option=key, value=callback, pipeline=name,
                )
            self.callbacks[key] = callback
        self.alerts = list(alerts)
        """Notifiers or Routes for the pipeline's alerts (failures, retries, SLA misses...)."""
        for notifier in self.alerts:
            if not (hasattr(notifier, "notify") or hasattr(notifier, "notifiers")):
                raise InvalidOptionError(
                    f"Pipeline {name!r} got {notifier!r} in alerts=; give notifiers such as "
                    "WebhookNotifier(url), EmailNotifier(...), or Route(...).",
                    option="alerts", value=notifier, pipeline=name,
                )
        try:
            self.alert_dedup = parse_duration(alert_dedup)
        except ValueError as exc:
            raise InvalidOptionError(
                f"Pipeline {name!r} has alert_dedup={alert_dedup!r}: {exc}.",
                option="alert_dedup", value=alert_dedup, pipeline=name,
            ) from None
        self._router: AlertRouter | None = None
        self.delivery_errors: deque[tuple[str, BaseException]] = deque()
        """Failures of notifiers and lineage transports, from their threads; the run loop
        records each as a delivery_error event."""
        self.checks: dict[str, list[CheckSpec]] = {}
        """Data-quality checks by the task whose output they look at."""
        self.sensors: list[Sensor] = []
        """What starts runs besides the schedule: sensors, triggers, ``@pipe.sensor``."""
        for sensor in [*sensors, *triggers]:
            self._add_sensor(sensor)
        self.defaults = dict(defaults or {})
        _check_options(self.defaults, f"Pipeline {name!r} defaults", name, None)
        for key in ("after", "outputs", "inputs", "map_over", "version", "priority"):
            if key in self.defaults:
                raise InvalidOptionError(
                    f"Pipeline {name!r} defaults cannot set {key!r}: it belongs to one task.",
                    option=key, value=self.defaults[key], pipeline=name,
                )
        self._default_fields = _coerce(name, None, self.defaults)
        self.description = description
        self.tasks: dict[str, TaskSpec] = {}
        self._graph: Graph | None = None
        self.token = secrets.token_hex(8)
        _REGISTRY[self.token] = self
        self.source = _source(sys._getframe(1))
        """(module, file, SHA-256 of the file as it was imported) when the pipeline is made
        at the top of a module file: how a worker that did not fork from this process loads
        it (executors/ref.py), and checks that its copy is the same code."""

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, tasks={list(self.tasks)})"

    # -- definition -------------------------------------------------------------------------

    def task(self, fn: F | None = None, /, *, name: str | None = None, **options: Any) -> Any:
        """Declare a function as a task; its parameter names are its upstream tasks.

        Used bare (``@pipe.task``) or with options (``@pipe.task(retries=3, timeout="10m")``).
        Returns the function unchanged, so it stays an ordinary, testable function.
        """
        return self._decorate(fn, name, "python", options)

    def branch(self, fn: F | None = None, /, *, name: str | None = None, **options: Any) -> Any:
        """Declare a task that returns the name (or names) of the downstream tasks to follow,
        or None to follow none; engine/branching.py says what that skips."""
        if options.get("map_over") is not None:
            raise InvalidOptionError(
                f"Branch {name or getattr(fn, '__name__', '?')!r} cannot take map_over: one "
                "run of a branch makes one choice. Map the tasks after it instead.",
                option="map_over", value=options["map_over"], pipeline=self.name, task=name,
            )
        return self._decorate(fn, name, "branch", options)

    def gate(
        self, name: str, *, after: Iterable[str] = (), message: str = "", **options: Any
    ) -> TaskSpec:
        """A task that waits for a person: ``cadenza approve RUN NAME`` lets its downstream
        run, ``cadenza reject RUN NAME --reason ...`` fails it. Other branches go on."""
        for key in ("retries", "timeout", "cache", "outputs", "inputs", "map_over", "version"):
            if key in options:
                raise InvalidOptionError(
                    f"Gate {name!r} cannot take {key!r}: a gate runs no code.",
                    option=key, value=options[key], pipeline=self.name, task=name,
                )
        spec = self._spec_for(None, name, "gate", {**options, "after": after, "cache": False})
        spec = replace(spec, message=message or f"Approve {name}?", retry=NO_RETRY, timeout=None)
        self._add(spec)
        return spec

    def alert_router(self) -> AlertRouter | None:
        """The router for this pipeline's alerts: one per pipeline object, so the dedup window
        spans every run a process makes (the scheduler's, a notebook's); None without alerts."""
        if not self.alerts and not any(spec.alerts for spec in self.tasks.values()):
            return None  # without importing cadenza.alerts: most runs send none
        from cadenza.alerts import AlertRouter, Route

        routes = [a if isinstance(a, Route) else None for a in self.alerts]
        plain = [a for a in self.alerts if not isinstance(a, Route)]
        found = [r for r in routes if r is not None] + ([Route(plain)] if plain else [])
        for spec in self.tasks.values():
            task_plain = [a for a in spec.alerts if not isinstance(a, Route)]
            found += [a for a in spec.alerts if isinstance(a, Route)]
            if task_plain:
                found.append(Route(task_plain, tasks=[spec.name]))
        if not found:
            return None
        if self._router is None:
            self._router = AlertRouter(self.name, found, dedup_window=self.alert_dedup,
                                       on_error=self.report_delivery_error)
        return self._router

    def report_delivery_error(self, to: str, error: BaseException) -> None:
        """For notifiers and transports: record that sending to ``to`` failed (thread-safe)."""
        self.delivery_errors.append((to, error))

    def check(
        self, task: str, fn: Callable[[Any], Any] | None = None, /, *,
        severity: str = "error", name: str | None = None,
    ) -> Any:
        """Check ``task``'s output: ``fn(value)`` returns a bool or a CheckResult.

        As a decorator (``@pipe.check("clean")``) or a call with a built-in
        (``pipe.check("clean", checks.not_null(["id"]), severity="warn")``)."""
        if severity not in ("error", "warn"):
            raise InvalidOptionError(
                f"Check on task {task!r} has severity={severity!r}; choose 'error' (fails the "
                "task) or 'warn' (records and alerts).",
                option="severity", value=severity, pipeline=self.name, task=task,
            )

        def register(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
            if not callable(f):
                raise InvalidOptionError(
                    f"Check on task {task!r} must be a function of the output, got {f!r}.",
                    option="check", value=f, pipeline=self.name, task=task,
                )
            label = name or getattr(f, "__name__", "check")
            existing = self.checks.setdefault(task, [])
            if any(c.name == label for c in existing):
                raise InvalidOptionError(
                    f"Task {task!r} has two checks named {label!r}; pass name= to one.",
                    option="name", value=label, pipeline=self.name, task=task,
                )
            existing.append(CheckSpec(label, f, severity))  # type: ignore[arg-type]
            self._graph = None
            return f

        return register if fn is None else register(fn)

    def sensor(
        self, fn: F | None = None, /, *, every: str | float = "30s", name: str | None = None
    ) -> Any:
        """Check ``fn`` every ``every``; it returns None or False (no run), True, a dict of run
        params, or a SensorResult. A parameter named ``cursor`` receives what the last
        SensorResult(cursor=...) saved."""
        from cadenza.schedule.sensors import FunctionSensor

        def register(f: F) -> F:
            self._add_sensor(FunctionSensor(f, every, name))
            return f

        return register if fn is None else register(fn)

    def _add_sensor(self, sensor: Sensor) -> None:
        from cadenza.schedule.sensors import Sensor as SensorBase

        if not isinstance(sensor, SensorBase):
            raise InvalidOptionError(
                f"Pipeline {self.name!r} got {sensor!r} as a sensor or trigger; give "
                "FileSensor(...), on_new_version(...), or use @pipe.sensor.",
                option="sensors", value=sensor, pipeline=self.name,
            )
        if not isinstance(sensor.name, str) or not NAME.match(sensor.name):
            raise InvalidOptionError(
                f"Pipeline {self.name!r} got a sensor named {sensor.name!r}; a sensor's name "
                "names its runs and its saved cursor, so it must be a Python identifier, like "
                "'new_files'.",
                option="sensors", value=sensor.name, pipeline=self.name,
            )
        if any(s.name == sensor.name for s in self.sensors):
            raise InvalidOptionError(
                f"Pipeline {self.name!r} has two sensors named {sensor.name!r}; pass name= "
                "to tell them apart (the name keys the sensor's saved cursor).",
                option="sensors", value=sensor.name, pipeline=self.name,
            )
        self.sensors.append(sensor)

    def _decorate(
        self, fn: F | None, name: str | None, kind: TaskKind, options: dict[str, Any]
    ) -> Any:
        def register(f: F) -> F:
            if not callable(f):
                raise InvalidOptionError(
                    f"@{self.name}.task decorates functions, not {f!r}.",
                    option="fn", value=f, pipeline=self.name,
                )
            self._add(self._spec_for(f, name or f.__name__, kind, options))
            return f

        return register if fn is None else register(fn)

    def shell(
        self,
        name: str,
        command: str,
        *,
        inputs: Iterable[str] = (),
        outputs: Mapping[str, str] | None = None,
        **options: Any,
    ) -> TaskSpec:
        """Declare a command-line step.

        ``command`` may use ``{inputs.NAME}`` (an upstream task's stored output, or the path of
        an input file given by its position as ``{inputs[0]}``), ``{outputs.NAME}`` (a
        declared output file), ``{params.NAME}`` and ``{run_id}``; every value is shell-quoted.
        """
        if not isinstance(command, str) or not command.strip():
            raise InvalidOptionError(
                f"Shell task {name!r} needs a command, got {command!r}.",
                option="command", value=command, pipeline=self.name, task=name,
            )
        entries = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        spec = self._spec_for(
            None, name, "shell", {**options, "outputs": dict(outputs or {})}
        )
        spec = replace(spec, command=command, shell_inputs=tuple(str(e) for e in entries))
        self._add(spec)
        return spec

    def _spec_for(
        self, fn: Callable[..., Any] | None, name: str, kind: TaskKind, options: dict[str, Any]
    ) -> TaskSpec:
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidOptionError(
                f"Task name {name!r} in pipeline {self.name!r} is invalid: a task name must be "
                "a Python identifier (letters, digits and '_', not starting with a digit).",
                option="name", value=name, pipeline=self.name, task=str(name),
            )
        _check_options(options, f"Task {name!r}", self.name, name)
        fields = {**self._default_fields, **_coerce(self.name, name, options)}
        args: tuple[str, ...] = ()
        optional: frozenset[str] = frozenset()
        if fn is not None:
            signature = inspect.signature(fn)
            for p in signature.parameters.values():
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                    raise InvalidOptionError(
                        f"Task {name!r} has parameter {p!s}; a task's parameters must be plain "
                        "named ones, each naming an upstream task, a param or 'ctx'.",
                        option="signature", value=str(signature), pipeline=self.name, task=name,
                    )
            args = tuple(signature.parameters)
            optional = frozenset(
                n for n, p in signature.parameters.items() if p.default is not p.empty
            )
        map_over = fields.get("map_over")
        if map_over is not None and map_over not in args:
            raise InvalidOptionError(
                f"Task {name!r} maps over {map_over!r}, which is not one of its parameters "
                f"{list(args)}. Name the upstream task whose list it fans out over.",
                option="map_over", value=map_over, pipeline=self.name, task=name,
            )
        doc = inspect.getdoc(fn) if fn is not None else None
        return TaskSpec(
            name=name, kind=kind, fn=fn, args=args, optional_args=optional,
            description=(doc or "").strip().split("\n\n")[0], **fields,
        )

    def _add(self, spec: TaskSpec) -> None:
        if spec.name in self.tasks:
            raise DuplicateTaskError(
                f"Pipeline {self.name!r} already has a task named {spec.name!r}. Rename one of "
                "them, or pass name='...' to the decorator.",
                pipeline=self.name, task=spec.name,
            )
        self.tasks[spec.name] = spec
        self._graph = None

    # -- use --------------------------------------------------------------------------------

    @property
    def secret_params(self) -> frozenset[str]:
        """Params declared ``Param(..., secret=True)``: stored and shown as ``***``."""
        return frozenset(k for k, v in self.params.items() if as_param(v).secret)

    def graph(self) -> Graph:
        """The checked DAG: raises ``CycleError`` or ``UnknownInputError`` when it is not one."""
        if self._graph is None:
            from cadenza.graph import Graph

            self._graph = Graph.build(self)
        return self._graph

    def validate(self) -> Pipeline:
        """Build the graph, raising the first definition error; return the pipeline."""
        self.graph()
        return self

    def run(self, params: Mapping[str, Any] | None = None, *, db: str | Path | None = None,
            artifacts: str | Path | None = None, **options: Any) -> RunResult:
        """Run the pipeline now and return its result; see ``cadenza.engine.run.run_pipeline``.
        ``db``, ``artifacts``: where the metadata store and the artifacts are, as ``--db`` and
        ``--artifacts`` (else $CADENZA_DB, the config, the home's; docs/stores.md)."""
        from cadenza.engine.launch import run_pipeline

        if db is not None or artifacts is not None:
            from cadenza.workspace import Workspace, locate

            found = locate(options.pop("home", None), db=db, artifacts=artifacts)
            options["workspace"] = Workspace.open(found)  # kept by the result, as launch's
        return run_pipeline(self, params=params, **options)
