"""cadenza: a Python orchestrator for data and ML pipelines."""

from __future__ import annotations

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
from cadenza.schedule.sensors import FileSensor, Sensor, SensorResult, on_new_version

__version__ = "0.1.0"

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
