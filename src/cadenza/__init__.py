"""cadenza: a Python orchestrator for data and ML pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cadenza.exceptions import (
    CadenzaError,
    Cancelled,
    ClaimLostError,
    CycleError,
    DamagedArtifactError,
    DefinitionError,
    DuplicateTaskError,
    InvalidOptionError,
    InvalidTransitionError,
    ParamError,
    PipelineLoadError,
    RunNotFoundError,
    SerializationError,
    StoreBusyError,
    StoreDamagedError,
    StoreError,
    StoreFullError,
    TaskError,
    TaskTimeoutError,
    UnknownInputError,
    WorkerCrashedError,
)

if TYPE_CHECKING:
    from cadenza.artifacts.serializers import register_serializer
    from cadenza.engine.context import ctx
    from cadenza.engine.hooks import Hooks
    from cadenza.engine.outcomes import Skip
    from cadenza.engine.result import RunResult, TaskResult
    from cadenza.engine.retry import Retry
    from cadenza.engine.states import RunState, TaskState
    from cadenza.params import Param
    from cadenza.pipeline import Pipeline, TaskSpec
    from cadenza.schedule.sensors import FileSensor, Sensor, SensorResult, on_new_version

__version__ = "0.1.0"

_LAZY = {
    "register_serializer": "cadenza.artifacts.serializers",
    "ctx": "cadenza.engine.context",
    "Hooks": "cadenza.engine.hooks",
    "Skip": "cadenza.engine.outcomes",
    "RunResult": "cadenza.engine.result",
    "TaskResult": "cadenza.engine.result",
    "Retry": "cadenza.engine.retry",
    "RunState": "cadenza.engine.states",
    "TaskState": "cadenza.engine.states",
    "Param": "cadenza.params",
    "Pipeline": "cadenza.pipeline",
    "TaskSpec": "cadenza.pipeline",
    "FileSensor": "cadenza.schedule.sensors",
    "Sensor": "cadenza.schedule.sensors",
    "SensorResult": "cadenza.schedule.sensors",
    "on_new_version": "cadenza.schedule.sensors",
}
"""Public names imported when first used (PEP 562), so that importing any part of cadenza (the
CLI's ``cadenza --help``, ``cadenza.exceptions``) does not load the engine, the stores and the
schedule package with it. ``from cadenza import Pipeline`` works as before."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cadenza' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "CadenzaError",
    "Cancelled",
    "ClaimLostError",
    "CycleError",
    "DamagedArtifactError",
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
    "StoreBusyError",
    "StoreDamagedError",
    "StoreError",
    "StoreFullError",
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
