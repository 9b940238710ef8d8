"""cadenza: a Python orchestrator for data and ML pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cadenza.artifacts.serializers import register_serializer
from cadenza.engine.context import ctx
from cadenza.engine.hooks import Hooks
from cadenza.engine.outcomes import Skip
from cadenza.engine.result import RunResult, TaskResult
from cadenza.engine.retry import Retry
from cadenza.engine.states import RunState, TaskState
from cadenza.exceptions import (
    CadenzaError,
    Cancelled,
    CycleError,
    DefinitionError,
    DuplicateTaskError,
    InvalidOptionError,
    InvalidTransitionError,
    ParamError,
    PipelineLoadError,
    RunNotFoundError,
    SerializationError,
    TaskError,
    TaskTimeoutError,
    UnknownInputError,
    WorkerCrashedError,
)
from cadenza.params import Param
from cadenza.pipeline import Pipeline, TaskSpec

if TYPE_CHECKING:
    from cadenza.schedule.sensors import FileSensor, Sensor, SensorResult, on_new_version

__version__ = "0.1.0"

_LAZY = {name: "cadenza.schedule.sensors"
         for name in ("FileSensor", "Sensor", "SensorResult", "on_new_version")}
"""Public names imported when first used: the schedule package costs every `cadenza run` about
10 ms (cron parsing, zoneinfo), and only scheduled pipelines need it."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module 'cadenza' has no attribute {name!r}")

__all__ = [
    "CadenzaError",
    "Cancelled",
    "CycleError",
    "DefinitionError",
    "DuplicateTaskError",
    "FileSensor",
    "Hooks",
    "InvalidOptionError",
    "InvalidTransitionError",
    "Param",
    "ParamError",
    "Pipeline",
    "PipelineLoadError",
    "Retry",
    "RunNotFoundError",
    "RunResult",
    "RunState",
    "Sensor",
    "SensorResult",
    "SerializationError",
    "Skip",
    "TaskError",
    "TaskResult",
    "TaskSpec",
    "TaskState",
    "TaskTimeoutError",
    "UnknownInputError",
    "WorkerCrashedError",
    "__version__",
    "ctx",
    "on_new_version",
    "register_serializer",
]
