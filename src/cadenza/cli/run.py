"""`cadenza run`, `retry` and `task`: run a pipeline, all of it or part."""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.text import Text

from cadenza._display import (
    Progress,
    check_lines,
    duration,
    result_json,
    rows_of_result,
    screen_rows,
    styled,
    summary,
)
from cadenza._loader import load_pipeline
from cadenza.cli._base import (
    DEFAULT_EXECUTOR,
    EXIT_FAILED,
    _json_option,
    _location,
    _params_option,
    _print_json,
    _selection_options,
    _workspace,
    console,
    did_you_mean,
    errors,
    main,
    resolve_run,
)
from cadenza.engine.claim import Claim, stale_after_from
from cadenza.engine.hooks import Hooks
from cadenza.engine.launch import DryWorkspace, dry_workspace, run_pipeline
from cadenza.engine.result import RunResult
from cadenza.exceptions import CadenzaError, ClaimLostError, RunClaimedError
from cadenza.executors import EXECUTORS, inline, make_executor
from cadenza.params import parse_assignments
from cadenza.pipeline import Pipeline
from cadenza.workspace import Workspace

if TYPE_CHECKING:
    from cadenza.graph import Graph
    from cadenza.lineage import Transport
    from cadenza.store.base import RunRecord


def _execute(ctx: click.Context, pipe: Pipeline, as_json: bool, quiet: bool,
             metrics_file: Path | None = None, lineage: Transport | None = None,
             **options: Any) -> NoReturn:
    """Run ``pipe``, print what happened, and exit with the run's code.

    SIGTERM and SIGINT (Ctrl-C) only set the run's cancel flag, which the run loop handles
    between its steps, never inside a commit; an inline task, which runs in this thread, is
    stopped where it is. A run they cancel exits 143 / 130, recorded and resumable."""
    cancel = threading.Event()
    hooks: list[Hooks] = [] if as_json or quiet else [Progress(console)]
    seen = _RunSeen()
    hooks.append(seen)
    metrics = None
    if metrics_file is not None:  # imported only when asked for, as is lineage
        from cadenza.metrics import Metrics

        metrics = Metrics()
        hooks.append(metrics.hooks(pipe.name))
    left: list[str] = []
    result: RunResult | None = None
    # After a signal, keep the handlers to the end: another Ctrl-C must not cut the exit short.
    with inline.signals_cancel(cancel, (signal.SIGTERM, signal.SIGINT),
                               restore=not _whole_process()) as got, \
            _workspace(ctx, create=True) as ws:
        if lineage is not None:
            from cadenza.lineage import OpenLineageHooks

            hooks.append(OpenLineageHooks.for_run(lineage, pipe, ws.home))
        try:
            result = run_pipeline(pipe, workspace=ws, hooks=hooks, cancel=cancel,
                                  still_running=left, **options)
        except KeyboardInterrupt:  # an inline task stopped by a signal: recorded cancelled
            pass
        else:
            if metrics is not None and metrics_file is not None:
                metrics.write_textfile(metrics_file)
            if lineage is not None and hasattr(lineage, "close"):
                lineage.close()
            _report(result, ws, as_json, quiet, pipe)
    if result is None:
        _stopped(got[0] if got else signal.SIGINT, seen.run_id, left)
    if got and result.state == "cancelled":
        _stopped(got[0], result.run_id, left)
    if got:
        errors.print(f"note: {signal.Signals(got[0]).name} came after run {result.run_id} had "
                     f"finished {result.state}: nothing was cancelled.", soft_wrap=True)
    _exit(0 if result.ok else EXIT_FAILED, left, signalled=bool(got))


class _RunSeen(Hooks):
    """Notes the run's id as it starts, for a run that ends by a signal."""

    run_id: str | None = None

    def before_run(self, run: RunRecord, graph: Graph) -> None:
        self.run_id = run.run_id


def _stopped(signum: int, run_id: str | None, left: list[str]) -> NoReturn:
    """A signal cancelled the run: say so, and exit 128 + the signal's number (130 for
    SIGINT, 143 for SIGTERM), as a shell reports a process the signal ended."""
    what = "interrupted" if signum == signal.SIGINT else signal.Signals(signum).name
    if run_id is None:
        errors.print(Text(f"{what}: the run was cancelled before it started.", "red"))
    else:
        errors.print(Text(f"{what}: the run was cancelled and its state recorded. Resume "
                          f"it with: cadenza run --resume {run_id}", "red"), soft_wrap=True)
    _exit(128 + signum, left, signalled=True)


def _exit(code: int, left: list[str], signalled: bool = False) -> NoReturn:
    """Exit with ``code`` now, even while cancelled calls run on in threads (which cannot be
    stopped, and which the interpreter would otherwise wait for at exit). After a signal, the
    interpreter's own shutdown is skipped too: it puts back the default handlers, so one more
    Ctrl-C during it would end the process by the signal instead of with ``code``."""
    if not left and not (signalled and _whole_process()):
        sys.exit(code)
    one = len(left) == 1
    if left:
        errors.print(
            f"note: {'task' if one else 'tasks'} {', '.join(left)} {'was' if one else 'were'} "
            f"still running in {'a thread' if one else 'threads'}, which cannot be stopped from "
            f"outside: {'it ends' if one else 'they end'}, unfinished, as cadenza exits now. "
            f"Anything {'it' if one else 'they'} started outside this process (a shell command, "
            "a remote job) is not stopped.", soft_wrap=True)
    if not _whole_process():  # cadenza called from Python (a test, a notebook): leave it be
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _whole_process() -> bool:
    """True when this process is the `cadenza` command itself (``python -m cadenza`` or the
    installed script), so ending it ends nobody else's work."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None:
        return bool(spec.name == "cadenza.__main__")
    return Path(sys.argv[0]).stem == "cadenza"


def _report(result: RunResult, ws: Workspace, as_json: bool, quiet: bool,
            pipe: Pipeline) -> None:
    if as_json:
        _print_json(result_json(result))
        return
    run = ws.store.get_run(result.run_id)
    if not quiet:
        for part in summary(rows_of_result(result), result.run_id,
                            screen_rows(console) - 4, console.width):
            console.print(part, soft_wrap=isinstance(part, Text))
    took = duration(run.started_at, run.ended_at)
    console.print(Text.assemble(f"run {result.run_id} ", styled(result.state), f" in {took}"))
    # where the files the tasks declared are, at this run's paths: reports, models, plots
    from cadenza.engine import outputs

    fields = outputs.fields(run.run_id, (run.logical_date, run.interval_start,
                                         run.interval_end), run.params)
    for name, task in result.tasks.items():
        paths = outputs.resolve(pipe.tasks[name].outputs, fields, ws.root) if task.files else {}
        for output in task.files:
            path = ws.root / paths[output]
            if path.exists():
                console.print(f"  {name}.{output}: {path}", soft_wrap=True)
    if result.state == "waiting":
        nodes = pipe.graph().nodes
        for name, task in result.tasks.items():
            if task.state == "awaiting_approval":
                message = nodes[name].spec.message
                console.print(Text.assemble("  waiting at gate ", (name, "bold"),
                                            f": {message}" if message else ""), soft_wrap=True)
                console.print(f"  approve: cadenza approve {result.run_id} {name}", soft_wrap=True)
        console.print(f"  then:    cadenza run --resume {result.run_id}", soft_wrap=True)
    elif not result.ok:
        bad = [n for n, t in result.tasks.items() if t.state == "failed" and t.attempts]
        if bad:
            console.print(f"  see why: cadenza logs {result.run_id} {bad[0]}", soft_wrap=True)
        console.print(f"  resume:  cadenza run --resume {result.run_id}", soft_wrap=True)


@main.command()
@click.argument("target", required=False)
@_params_option
@click.option("--executor", "-e", type=click.Choice(EXECUTORS), default=DEFAULT_EXECUTOR,
              show_default=True, help="Where tasks run.")
@click.option("--workers", "-w", type=int, help="Worker slots (default: CPU count).")
@click.option("--dask-address", metavar="ADDRESS", envvar="CADENZA_DASK_ADDRESS",
              show_envvar=True, help="Run on the Dask cluster whose scheduler is here, like "
              "tcp://host:8786 (implies -e dask); else -e dask starts a LocalCluster.")
@click.option("--dask-isolation", type=click.Choice(["processes", "threads"]),
              default="processes", show_default=True, envvar="CADENZA_DASK_ISOLATION",
              show_envvar=True, help="Where an attempt runs on its Dask worker: in a forked "
              "child that a timeout or cancel kills, or in the worker's thread, for clusters "
              "that cannot fork (a timed-out or cancelled body then runs on to its end).")
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
        workers: int | None, dask_address: str | None, dask_isolation: str,
        only: tuple[str, ...],
        from_: tuple[str, ...], force: bool,
        resume: str | None, approve: tuple[str, ...], no_wait: bool, quiet: bool,
        metrics_file: Path | None, lineage_file: Path | None, lineage_url: str | None,
        as_json: bool) -> None:
    """Run a pipeline: TARGET is a .py file, a folder with pipeline.py, or a module,
    optionally followed by :PIPELINE."""
    stale_after = stale_after_from(os.environ)
    executor, dask_address = _dask_choice(ctx, executor, dask_address)
    if executor != "dask" and ctx.get_parameter_source(
            "dask_isolation") == click.core.ParameterSource.ENVIRONMENT:
        dask_isolation = "processes"  # CADENZA_DASK_ISOLATION counts only with -e dask
    if resume is None:
        if target is None:
            raise click.UsageError("give the pipeline to run: cadenza run TARGET")
        _run_claimed(ctx, None, target, stale_after, params=parse_assignments(params),
                     executor=executor, workers=workers, dask_address=dask_address,
                     dask_isolation=dask_isolation,
                     only=only or None, from_=from_ or None, force=force, approve=approve,
                     wait=not no_wait,
                     quiet=quiet, as_json=as_json, metrics_file=metrics_file,
                     lineage=lineage_transport(lineage_file, lineage_url))
    # The run is claimed before its pipeline is imported (which may take long): a second
    # resume of a live run is refused at once, naming who runs it.
    with _workspace(ctx, write=True) as ws:
        resume = resolve_run(ws, resume)
        try:
            claim = Claim.take(ws.store, resume, stale_after)
        except RunClaimedError as busy:
            errors.print(Text(f"error: {busy}", "red"), soft_wrap=True)
            sys.exit(EXIT_FAILED)
        try:
            target = target or ws.store.get_run(resume).target
            if not target:
                raise CadenzaError(f"Run {resume} did not record its pipeline file; give "
                                   "TARGET.")
            _run_claimed(ctx, claim, target, stale_after, params=parse_assignments(params),
                         executor=executor, workers=workers, dask_address=dask_address,
                         dask_isolation=dask_isolation,
                         only=only or None, from_=from_ or None, force=force, resume=resume,
                         approve=approve,
                         wait=not no_wait, quiet=quiet, as_json=as_json,
                         metrics_file=metrics_file,
                         lineage=lineage_transport(lineage_file, lineage_url))
        finally:  # a run that never started gives its claim up; one that ran did already
            claim.stop(ws.store)


def _run_claimed(ctx: click.Context, claim: Claim | None, target: str, stale_after: float, *,
                 quiet: bool, as_json: bool, metrics_file: Path | None,
                 lineage: Transport | None, dask_address: str | None,
                 dask_isolation: str = "processes", **options: Any) -> NoReturn:
    """Import the pipeline and run it under ``claim`` (a new run: claimed as it is created);
    a run another runner takes over ends here, exit code 1, naming who has it."""
    pipe = load_pipeline(target)
    cluster = None  # a Dask cluster's client: this command's to close (launch closes its own)
    if dask_address is not None or dask_isolation != "processes":
        cluster = make_executor(options["executor"], options.pop("workers"),
                                address=dask_address, isolation=dask_isolation)
        options["executor"] = cluster
    try:
        _execute(ctx, pipe, as_json, quiet, metrics_file=metrics_file, lineage=lineage,
                 target=target, params_from_text=True, claim=claim, stale_after=stale_after,
                 **options)
    except ClaimLostError as lost:
        errors.print(Text(f"error: {lost}", "red"), soft_wrap=True)
        sys.exit(EXIT_FAILED)
    finally:
        if cluster is not None:
            cluster.shutdown(wait=False)


def _dask_choice(ctx: click.Context, executor: str, address: str | None
                 ) -> tuple[str, str | None]:
    """``--dask-address`` alone means ``-e dask``; CADENZA_DASK_ADDRESS counts only with
    ``-e dask`` (it says where the cluster is, not that every run goes there)."""
    given = click.core.ParameterSource
    if address is None or (executor != "dask"
                           and ctx.get_parameter_source("dask_address") == given.ENVIRONMENT):
        return executor, None
    if ctx.get_parameter_source("executor") == given.DEFAULT:
        return "dask", address
    return executor, address  # make_executor refuses an address for another executor


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option("--executor", "-e", type=click.Choice(EXECUTORS), default=DEFAULT_EXECUTOR)
@click.option("--workers", "-w", type=int)
@click.option("--no-wait", is_flag=True,
              help="Do not wait for gates: end the run `waiting`; resume it after approval.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final line.")
@_json_option
@click.pass_context
def retry(ctx: click.Context, run_id: str, executor: str, workers: int | None, no_wait: bool,
          quiet: bool, as_json: bool) -> None:
    """Re-run what did not succeed in RUN (same as run --resume RUN)."""
    ctx.invoke(run, target=None, params=(), executor=executor, workers=workers,
               dask_address=None, dask_isolation="processes", only=(),
               from_=(), force=False, resume=run_id, approve=(), no_wait=no_wait, quiet=quiet,
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
    """Try one TASK of a pipeline alone, dry: its inputs come from --input files or from the
    outputs of earlier runs, and nothing is recorded (no run, no new artifact versions).
    Files the task writes itself are written, as in a real run."""
    pipe = load_pipeline(target)
    nodes = pipe.graph().nodes
    if task not in nodes:
        raise CadenzaError(
            f"Pipeline {pipe.name!r} has no task {task!r}.{did_you_mean(task, nodes)} Its "
            f"tasks are {list(nodes)}."
        )
    given = parse_assignments(inputs)
    for name in given:
        if name not in nodes[task].inputs:
            raise CadenzaError(
                f"--input {name!r}: task {task!r} takes no input of that name; its inputs are "
                f"{list(nodes[task].inputs)}."
            )
    provided = {name: _read_input(name, str(path)) for name, path in given.items()}
    found = _location(ctx)
    project = Workspace.open(found, readonly=True) if found.exists else None
    try:
        with tempfile.TemporaryDirectory(prefix="cadenza-task-") as scratch:
            dry = dry_workspace(pipe, task, project, found.home.parent, Path(scratch), provided)
            missing = [up for up in sorted(pipe.graph().needed_outputs({task}) - set(provided))
                       if not dry.store.cache_entries(pipe.name, up, limit=1)]
            if missing:
                where = (f"no run in the store at {str(found.home)!r} stored"
                         if project is not None else "no store was found to read")
                raise CadenzaError(
                    f"Task {task!r} needs the output of {', '.join(map(repr, missing))}, and "
                    f"{where} one. Give it as a file, e.g. --input {missing[0]}=data.json, or "
                    f"run the pipeline {pipe.name!r} once first."
                )
            try:
                result = run_pipeline(pipe, parse_assignments(params), workspace=dry,
                                      executor="inline", only=[task], provided=provided,
                                      target=target, params_from_text=True)
            except KeyboardInterrupt:
                errors.print(Text("interrupted: nothing was recorded.", "red"))
                sys.exit(130)
            ok = _report_task(result, dry, pipe, task, given, as_json)
    finally:
        if project is not None:
            project.close()
    sys.exit(0 if ok else EXIT_FAILED)


def _report_task(result: RunResult, dry: DryWorkspace, pipe: Pipeline, name: str,
                 given: dict[str, Any], as_json: bool) -> bool:
    """Print what one task did in a dry run; return whether it succeeded."""
    done = result.tasks[name]
    files = {output: dry.root / pipe.tasks[name].outputs[output] for output in done.files}
    ups = [up for up, t in result.tasks.items() if t.state == "cached" and up != name]
    sources = {up: (f"--input {given[up]}" if up in given else
                    f"run {dry.sources.get(result.tasks[up].output or '', '?')}") for up in ups}
    last = done.attempts[-1] if done.attempts else None
    log = Path(last.log_path) if last is not None and last.log_path else None
    printed = log.read_text(errors="replace") if log is not None and log.is_file() else ""
    value: Any = result.output(name) if done.state == "success" else None
    if as_json:
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = repr(value)
        _print_json({
            "pipeline": result.pipeline, "task": name, "state": done.state, "dry": True,
            "attempts": len(done.attempts), "error": done.error, "inputs": sources,
            "checks": last.checks if last is not None else [], "log": printed,
            "output": value, "files": {k: str(path) for k, path in files.items()},
        })
        return done.state == "success"
    took = duration(last.started_at, last.ended_at) if last is not None else "-"
    console.print(Text.assemble(f"{name} ", styled(done.state), f" in {took} ",
                                ("(dry: nothing was recorded)", "grey50")))
    for up, source in sources.items():
        console.print(f"  input {up}: from {source}", soft_wrap=True)
    for line in check_lines(last.checks if last is not None else [], "  ", 6):
        console.print(line, soft_wrap=True)
    if printed:
        console.rule(Text("what it printed"), style="grey50")
        click.echo(printed, nl=not printed.endswith("\n"))
        console.rule(style="grey50")
    if done.state != "success":
        if done.error and (not printed or done.error.splitlines()[0] not in printed):
            console.print(Text.assemble(("error: ", "red"), done.error), soft_wrap=True)
        return False
    for output, path in files.items():
        console.print(f"  wrote {output}: {path}", soft_wrap=True)
    console.print("output:", repr(value)[:2000], soft_wrap=True)
    return True


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
    if path is None and url is None:
        return None
    from cadenza.lineage import FileTransport, HttpTransport

    if path is not None:
        return FileTransport(path)
    return HttpTransport(url) if url is not None else None
