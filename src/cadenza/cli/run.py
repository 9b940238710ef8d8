"""`cadenza run`, `retry` and `task`: run a pipeline, all of it or part."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from cadenza._display import (
    Progress,
    duration,
    result_json,
    styled,
    task_table,
)
from cadenza._loader import load_pipeline
from cadenza.cli._base import (
    DEFAULT_EXECUTOR,
    EXIT_FAILED,
    _json_option,
    _params_option,
    _print_json,
    _selection_options,
    _workspace,
    console,
    errors,
    main,
    resolve_run,
)
from cadenza.engine.hooks import Hooks
from cadenza.engine.launch import run_pipeline
from cadenza.engine.result import RunResult
from cadenza.exceptions import CadenzaError
from cadenza.executors import EXECUTORS
from cadenza.lineage import FileTransport, HttpTransport, OpenLineageHooks, Transport
from cadenza.metrics import Metrics
from cadenza.params import parse_assignments
from cadenza.pipeline import Pipeline
from cadenza.store.base import effective_state
from cadenza.workspace import Workspace


def _execute(ctx: click.Context, pipe: Pipeline, as_json: bool, quiet: bool,
             show_output: str | None = None, metrics_file: Path | None = None,
             lineage: Transport | None = None, **options: Any) -> RunResult:
    cancel = threading.Event()
    hooks: list[Hooks] = [] if as_json or quiet else [Progress(console)]
    metrics = Metrics() if metrics_file is not None else None
    if metrics is not None:
        hooks.append(metrics.hooks(pipe.name))
    previous = signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    try:
        with _workspace(ctx, create=True) as ws:
            if lineage is not None:
                hooks.append(OpenLineageHooks.for_run(lineage, pipe, ws.home))
            result = run_pipeline(pipe, workspace=ws, hooks=hooks, cancel=cancel, **options)
            if metrics is not None and metrics_file is not None:
                metrics.write_textfile(metrics_file)
            if lineage is not None and hasattr(lineage, "close"):
                lineage.close()
            _report(result, ws, as_json, quiet, pipe)
            if show_output and result.ok and not as_json:
                console.print("output:", repr(result.output(show_output))[:2000],
                              highlight=False)
    except KeyboardInterrupt:
        errors.print(Text("interrupted: the run was cancelled and its state recorded.", "red"))
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return result


def _report(result: RunResult, ws: Workspace, as_json: bool, quiet: bool,
            pipe: Pipeline | None = None) -> None:
    if as_json:
        _print_json(result_json(result))
        return
    run = ws.store.get_run(result.run_id)
    if not quiet:
        attempts = {name: len(t.attempts) for name, t in result.tasks.items()}
        order = list(result.tasks)
        console.print(task_table(ws.store.task_instances(result.run_id), attempts, order))
    took = duration(run.started_at, run.ended_at)
    console.print(Text.assemble(f"run {result.run_id} ", styled(result.state), f" in {took}"))
    if pipe is not None:  # where the files the tasks declared are: reports, models, plots
        for name, task in result.tasks.items():
            for output in task.files:
                path = ws.root / pipe.tasks[name].outputs[output]
                if path.exists():
                    console.print(f"  {name}.{output}: {path}", highlight=False)
    if not result.ok:
        bad = [n for n, t in result.tasks.items() if t.state == "failed"]
        if bad:
            console.print(f"  see why: cadenza logs {result.run_id} {bad[0]}", highlight=False)
        console.print(f"  resume:  cadenza run --resume {result.run_id}", highlight=False)


@main.command()
@click.argument("target", required=False)
@_params_option
@click.option("--executor", "-e", type=click.Choice(EXECUTORS), default=DEFAULT_EXECUTOR,
              show_default=True, help="Where tasks run.")
@click.option("--workers", "-w", type=int, help="Worker slots (default: CPU count).")
@_selection_options
@click.option("--resume", metavar="RUN", help="Continue this run: re-run what did not succeed.")
@click.option("--approve", multiple=True, metavar="GATE", help="Approve this gate up front.")
@click.option("--no-wait", is_flag=True,
              help="Do not wait for gates: end the run `waiting`; resume it after approval.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final line.")
@click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write Prometheus metrics here when the run ends (textfile format).")
@click.option("--lineage-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Append OpenLineage events here, one JSON per line.")
@click.option("--lineage-url", help="POST OpenLineage events to this URL.")
@_json_option
@click.pass_context
def run(ctx: click.Context, target: str | None, params: tuple[str, ...], executor: str,
        workers: int | None, only: tuple[str, ...], from_: tuple[str, ...], force: bool,
        resume: str | None, approve: tuple[str, ...], no_wait: bool, quiet: bool,
        metrics_file: Path | None, lineage_file: Path | None, lineage_url: str | None,
        as_json: bool) -> None:
    """Run a pipeline: TARGET is a .py file, a folder with pipeline.py, or a module,
    optionally followed by :PIPELINE."""
    if resume is not None:
        with _workspace(ctx) as ws:
            record = ws.store.get_run(resume := resolve_run(ws, resume))
        if effective_state(record) == "running":
            raise CadenzaError(f"Run {resume} is still running (pid {record.runner_pid}).")
        target = target or record.target
        if not target:
            raise CadenzaError(f"Run {resume} did not record its pipeline file; give TARGET.")
    if target is None:
        raise click.UsageError("give the pipeline to run: cadenza run TARGET")
    pipe = load_pipeline(target)
    result = _execute(
        ctx, pipe, as_json, quiet, params=parse_assignments(params), executor=executor,
        workers=workers, only=only or None, from_=from_ or None, force=force, resume=resume,
        target=target, params_from_text=True, approve=approve, wait=not no_wait,
        metrics_file=metrics_file, lineage=lineage_transport(lineage_file, lineage_url),
    )
    sys.exit(0 if result.ok else EXIT_FAILED)


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option("--executor", "-e", type=click.Choice(EXECUTORS), default=DEFAULT_EXECUTOR)
@click.option("--workers", "-w", type=int)
@_json_option
@click.pass_context
def retry(ctx: click.Context, run_id: str, executor: str, workers: int | None,
          as_json: bool) -> None:
    """Re-run what did not succeed in RUN (same as run --resume RUN)."""
    ctx.invoke(run, target=None, params=(), executor=executor, workers=workers, only=(),
               from_=(), force=False, resume=run_id, approve=(), no_wait=False, quiet=False,
               metrics_file=None, lineage_file=None, lineage_url=None, as_json=as_json)


@main.command()
@click.argument("target")
@click.argument("task")
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=PATH",
              help="Feed upstream NAME from a file (.json, .parquet, .csv, .pkl, or text).")
@_params_option
@_json_option
@click.pass_context
def task(ctx: click.Context, target: str, task: str, inputs: tuple[str, ...],
         params: tuple[str, ...], as_json: bool) -> None:
    """Run one TASK of a pipeline alone; its inputs come from --input files or earlier runs."""
    pipe = load_pipeline(target)
    nodes = pipe.graph().nodes
    if task not in nodes:
        raise CadenzaError(
            f"Pipeline {pipe.name!r} has no task {task!r}; its tasks are {list(nodes)}."
        )
    provided = {name: _read_input(name, path) for name, path in parse_assignments(inputs).items()}
    for name in provided:
        if name not in nodes[task].inputs:
            raise CadenzaError(
                f"--input {name!r}: task {task!r} takes no input of that name; its inputs are "
                f"{list(nodes[task].inputs)}."
            )
    result = _execute(ctx, pipe, as_json, False, show_output=task,
                      params=parse_assignments(params), executor="inline", only=[task],
                      provided=provided, target=target, params_from_text=True)
    sys.exit(0 if result.ok else EXIT_FAILED)


def _read_input(name: str, text: str) -> Any:
    path = Path(text)
    if not path.is_file():
        raise CadenzaError(f"--input {name}={text!r}: no such file.")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return json.loads(path.read_text())
    if suffix in (".parquet", ".csv"):
        import pandas as pd  # type: ignore[import-untyped]

        return pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    if suffix in (".pkl", ".pickle"):
        import pickle

        with open(path, "rb") as handle:
            return pickle.load(handle)  # a file the user named on their own command line
    return path.read_text()


def lineage_transport(path: Path | None, url: str | None) -> Transport | None:
    """The OpenLineage transport the options ask for: a file, a URL, or none."""
    if path is not None and url is not None:
        raise CadenzaError("Give --lineage-file or --lineage-url, not both.")
    if path is not None:
        return FileTransport(path)
    return HttpTransport(url) if url is not None else None
