"""Start a run from Python: resolve params and the workspace, pick the executor, build the
Runner, run it. Everything here happens once per run, before the loop in engine/run.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cadenza.engine.hooks import Hooks
from cadenza.engine.result import RunResult
from cadenza.engine.run import Runner, new_run_id
from cadenza.engine.states import TaskState
from cadenza.exceptions import CadenzaError
from cadenza.executors import Executor, make_executor
from cadenza.params import resolve_params
from cadenza.pipeline import Pipeline
from cadenza.secrets import masked_params, register
from cadenza.store.base import RunRecord, TaskInstanceRecord
from cadenza.workspace import Workspace

S = TaskState


def run_pipeline(
    pipe: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | Executor = "inline",
    workers: int | None = None,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
    resume: str | None = None,
    only: Iterable[str] | None = None,
    from_: Iterable[str] | None = None,
    force: bool = False,
    hooks: Iterable[Hooks] = (),
    cancel: threading.Event | None = None,
    target: str = "",
    params_from_text: bool = False,
    provided: Mapping[str, Any] | None = None,
    approve: Iterable[str] = (),
    wait: bool = False,
    reset: bool = False,
) -> RunResult:
    """Run ``pipe`` and return its result. Raises only for bad input, never for a task's failure.

    ``executor``: inline, threads, processes, or an Executor. ``home``: the ``.cadenza`` folder
    (default: found from the working directory). ``resume``: a run id to continue, re-running
    only what did not succeed. ``only``/``from_``: run just these tasks (and, with ``from_``,
    everything downstream), taking other outputs from earlier runs. ``force``: ignore the cache.
    ``reset`` (with ``resume``): run every task of the run again, not only what failed.
    ``approve``: gates to approve up front. ``wait``: keep running while gates wait for a
    decision (else the run ends ``waiting``, to be resumed after a decision).
    """
    selected = select(pipe, only, from_)  # builds the graph: definition errors come first
    ws = workspace or Workspace.open(home)
    prior: list[TaskInstanceRecord] = []
    if resume is not None:
        run = ws.store.get_run(resume)
        if run.pipeline != pipe.name:
            raise CadenzaError(
                f"Run {resume} belongs to pipeline {run.pipeline!r}, not {pipe.name!r}."
            )
        if params:
            raise CadenzaError("A resumed run keeps its own params; do not pass new ones.")
        ws.store.request_cancel(resume, False)
        run.cancel_requested = False
        prior = ws.store.task_instances(resume)
        if reset:  # run every task again, numbering attempts on from the earlier ones
            for ti in prior:
                ti.state = S.PENDING.value
        # secret params were stored as ***: take them from the pipeline again
        real = {**run.params, **{k: v for k, v in resolve_params(pipe.name, pipe.params, None)
                                 .items() if k in pipe.secret_params}}
    else:
        real = resolve_params(pipe.name, pipe.params, params, from_text=params_from_text)
        run = RunRecord(new_run_id(pipe.name), pipe.name, "running",
                        masked_params(real, pipe.secret_params), time.time(), target=target)
    for name in pipe.secret_params:
        if isinstance(real[name], str):
            register(real[name])
    if isinstance(executor, str):
        if executor == "processes" and ws.in_memory:
            raise CadenzaError(
                "The processes executor needs a workspace on disk; an in-memory workspace "
                "cannot be shared with worker processes. Use inline or threads, or pass home=."
            )
        runner_executor, owned = make_executor(executor, workers), True
    else:
        runner_executor, owned = executor, False
    try:
        runner = Runner(pipe, ws, runner_executor, run, hooks=hooks, selected=selected,
                        force=force, cancel=cancel, prior=prior, provided=provided,
                        approve=approve, wait=wait, params=real)
        return runner.execute()
    finally:
        if owned:
            runner_executor.shutdown(wait=False)


def select(
    pipe: Pipeline, only: Iterable[str] | None, from_: Iterable[str] | None
) -> set[str] | None:
    """The tasks --only and --from pick (None: all of them), each name checked."""
    graph = pipe.graph()
    chosen: set[str] | None = None
    for flag, names in (("--only", only), ("--from", from_)):
        if names is None:
            continue
        names = list(names)
        for name in names:
            if name not in graph.nodes:
                raise CadenzaError(
                    f"{flag} {name!r}: pipeline {pipe.name!r} has no such task. Its tasks are: "
                    + ", ".join(graph.order) + "."
                )
        picked = set(names) if flag == "--only" else graph.descendants(names)
        chosen = picked if chosen is None else chosen | picked
    return chosen
