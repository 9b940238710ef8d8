"""The public API is exactly what __all__ says; a change here is a change for every user."""

from __future__ import annotations

import cadenza

PUBLIC = {
    "CadenzaError", "Cancelled", "CycleError", "DefinitionError", "DuplicateTaskError",
    "FileSensor", "Hooks", "InvalidOptionError", "InvalidTransitionError", "Param",
    "ParamError", "Pipeline", "PipelineLoadError", "Retry", "RunNotFoundError", "RunResult",
    "RunState", "Sensor", "SensorResult", "SerializationError", "Skip", "TaskError",
    "TaskResult", "TaskSpec", "TaskState",
    "TaskTimeoutError", "UnknownInputError", "WorkerCrashedError", "__version__", "ctx",
    "on_new_version", "register_serializer",
    # errors a caller may catch: a damaged artifact, a store that is busy, full or damaged,
    # a run another runner took over
    "ClaimLostError", "DamagedArtifactError", "StoreBusyError", "StoreDamagedError",
    "StoreError", "StoreFullError",
}


def test_all_is_pinned() -> None:
    assert set(cadenza.__all__) == PUBLIC
    assert sorted(cadenza.__all__) == cadenza.__all__


def test_every_public_name_exists_and_errors_share_one_root() -> None:
    for name in cadenza.__all__:
        assert hasattr(cadenza, name), name
    for name in PUBLIC:
        value = getattr(cadenza, name)
        if name.endswith("Error"):
            assert issubclass(value, cadenza.CadenzaError), name
