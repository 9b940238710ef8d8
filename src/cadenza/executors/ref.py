"""Tasks sent by reference to workers that did not fork from the runner (a Dask cluster).

The run loop sends an out-of-process executor each task's function as a stand-in that a
forked worker resolves from the pipelines it inherited. A worker started on its own has none,
so ``by_reference`` swaps the stand-ins for a ``TaskRef(target, pipeline, task, code_hash)``
that the worker loads with the loader ``cadenza run`` uses: once per worker process for each
target and version (``resolve``), after checking that its file is the version the runner
imported. A worker holding another version fails the attempt, without a retry (the next
attempt would meet the same file), saying so.

``by_value`` is the opt-in for clusters without the pipeline's code: the functions themselves
travel, pickled by value with cloudpickle.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cadenza.exceptions import CadenzaError, SerializationError
from cadenza.pipeline import _REGISTRY, CheckFunction, Pipeline, TaskFunction

if TYPE_CHECKING:
    from cadenza.engine.attempt import Call

_SYNTHETIC = "cadenza_pipeline_"  # how the loader names a pipeline file's module


class TaskRefError(SerializationError):
    """A worker could not load a task as the runner has it: its file is another version, or
    is missing or broken there. Not retried: the next attempt would meet the same file."""


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A task's function as a worker finds it: ``target`` as ``cadenza run`` takes it (a
    file path or a module, with ``:pipeline``), and the hash of that file as the runner
    imported it."""

    target: str
    pipeline: str
    task: str
    code_hash: str

    def __call__(self, **kwargs: Any) -> Any:
        fn = resolve(self).tasks[self.task].fn
        assert fn is not None  # a reference is made for Python tasks only
        return fn(**kwargs)


@dataclass(frozen=True, slots=True)
class CheckRef:
    """Check number ``index`` on the output of the task ``ref`` names."""

    ref: TaskRef
    index: int

    def __call__(self, value: Any) -> Any:
        return resolve(self.ref).checks[self.ref.task][self.index].fn(value)


# -- in the runner -----------------------------------------------------------------------------

_refs: dict[tuple[str, str], TaskRef] = {}  # (pipeline token, task) -> its reference
_refs_lock = threading.Lock()


def by_reference(call: Call) -> TaskRef | None:
    """Swap the stand-ins in ``call`` for references a fresh worker can load; the task's
    reference, or None when the call has no function (a shell task). Raises
    SerializationError, naming the fix, when the pipeline cannot be loaded by reference."""
    fn = call.fn
    if not isinstance(fn, TaskFunction):
        return None
    ref = _ref(fn.token, fn.task)
    call.fn = ref
    if call.checks:
        call.checks = tuple((name, severity, CheckRef(ref, check.index)
                             if isinstance(check, CheckFunction) else check)
                            for name, severity, check in call.checks)
    return ref


def by_value(call: Call) -> None:
    """Put the functions themselves in ``call``, and have cloudpickle pickle the pipeline's
    module by value: the worker needs none of the pipeline's code (its imports it does)."""
    import cloudpickle  # type: ignore[import-untyped]

    fn = call.fn
    if not isinstance(fn, TaskFunction):
        return
    pipe = _pipeline(fn.token, fn.task)
    spec = pipe.tasks[fn.task]
    module = getattr(spec.fn, "__module__", None)
    if module and module != "__main__" and module not in _by_value:
        cloudpickle.register_pickle_by_value(sys.modules[module])
        _by_value.add(module)
    call.fn = spec.fn
    if call.checks:
        checks = pipe.checks[fn.task]
        call.checks = tuple((name, severity, checks[check.index].fn
                             if isinstance(check, CheckFunction) else check)
                            for name, severity, check in call.checks)


_by_value: set[str] = set()


def dumps_by_value(obj: Any) -> bytes:
    """``obj`` pickled with cloudpickle: functions of modules ``by_value`` registered, and
    those pickle cannot name (a function made in a function), travel whole."""
    import cloudpickle

    return bytes(cloudpickle.dumps(obj, protocol=5))


def _pipeline(token: str, task: str) -> Pipeline:
    pipe = _REGISTRY.get(token)
    if pipe is None:  # the run holds its pipeline: only a bug gets here
        raise CadenzaError(f"Task {task!r}: its pipeline is gone from this process.")
    return pipe


def _ref(token: str, task: str) -> TaskRef:
    ref = _refs.get((token, task))
    if ref is not None:
        return ref
    pipe = _pipeline(token, task)
    source = pipe.source
    if source is None or not _defines(source[0], pipe):
        raise SerializationError(
            f"Pipeline {pipe.name!r} is not defined at the top of a module file, so a Dask "
            f"worker cannot load task {task!r} by reference. Define the pipeline at module "
            "level in a .py file (as `cadenza run` takes it), or ship the code by value: "
            "DaskExecutor(ship='value').", task=task,
        )
    module, file, digest = source
    place = file if module.startswith(_SYNTHETIC) or module == "__main__" else module
    ref = TaskRef(f"{place}:{pipe.name}", pipe.name, task, digest)
    with _refs_lock:
        _refs[(token, task)] = ref
    return ref


def _defines(module: str, pipe: Pipeline) -> bool:
    """Whether ``pipe`` is a global of ``module``, where the loader will look for it."""
    found = sys.modules.get(module)
    return found is not None and any(v is pipe for v in vars(found).values())


# -- on a worker -------------------------------------------------------------------------------

_loaded: dict[tuple[str, str], Pipeline] = {}  # (target, code hash) -> the pipeline
_load_lock = threading.Lock()  # two threads of one worker load a file once


def resolve(ref: TaskRef) -> Pipeline:
    """The pipeline ``ref`` names, loaded in this process at most once per version."""
    pipe = _loaded.get((ref.target, ref.code_hash))
    if pipe is not None:
        return pipe
    from cadenza._loader import load_pipeline

    with _load_lock:
        pipe = _loaded.get((ref.target, ref.code_hash))
        if pipe is not None:
            return pipe
        try:
            pipe = load_pipeline(ref.target)
        except CadenzaError as exc:
            raise TaskRefError(
                f"Task {ref.task!r} could not be loaded on this worker: {exc} The workers "
                f"need the pipeline's code where the runner has it ({ref.target!r}), or "
                "ship it by value: DaskExecutor(ship='value').", task=ref.task,
            ) from None
        theirs = pipe.source[2] if pipe.source is not None else "none"
        if theirs != ref.code_hash:
            where = pipe.source[1] if pipe.source is not None else ref.target
            raise TaskRefError(
                f"Task {ref.task!r}: this worker has another version of {where!r} than the "
                f"runner (its file hashes to {theirs[:12]}, the runner's to "
                f"{ref.code_hash[:12]}). Put the runner's version of the file on the workers "
                "(restart them if they import it as a module), or ship the code by value: "
                "DaskExecutor(ship='value').", task=ref.task,
            )
        _loaded[(ref.target, ref.code_hash)] = pipe
    return pipe


def preload(ref: TaskRef) -> None:
    """Load ``ref`` here, if it loads: in a worker about to fork a child for the attempt, so
    that the next child inherits it. A failure is the child's to meet, and report."""
    try:
        resolve(ref)
    except Exception:
        return
