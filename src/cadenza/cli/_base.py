"""The `cadenza` group and what its commands share: exit codes, options, output."""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console
from rich.text import Text

from cadenza.exceptions import CadenzaError, RunNotFoundError
from cadenza.store.open import describe
from cadenza.workspace import HOME_DIR, Location, Workspace, locate

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_EXECUTOR = "threads"
EXIT_FAILED = 1
EXIT_USAGE = 2

# Markup, emoji codes and highlighting are off: what is printed comes from users and tasks
# (errors quoting "[columns]", ids like "vm:1234:..."), so it is printed literally; the CLI's own
# colours are Text styles.
console = Console(markup=False, emoji=False, highlight=False)
errors = Console(stderr=True, markup=False, emoji=False, highlight=False)


def error_line(head: str, detail: object) -> Text:
    """``head`` in bold red, then ``detail`` as literal text."""
    return Text.assemble((head, "bold red"), " ", str(detail))


COMMANDS = {
    "init": "init", "plan": "look", "show": "look", "runs": "look", "status": "look",
    "logs": "look", "alerts": "observe", "lineage": "observe", "artifacts": "observe",
    "cancel": "operate", "approve": "operate", "reject": "operate", "clear": "operate",
    "mark": "operate", "run": "run",
    "retry": "run", "task": "run", "schedule": "schedule", "scheduler": "schedule",
    "pause": "schedule", "unpause": "schedule", "backfill": "schedule", "ui": "ui",
    "db": "db",
}
"""The module of cadenza.cli that defines each command. A command's module is imported when
the command is used, so `cadenza run` loads neither the UI, the scheduler nor the tables of the
other commands (tests/cli/test_cli.py checks this table against the registered commands)."""


class _Group(click.Group):
    """Loads each command's module when it is used; turns every CadenzaError into one red
    line on stderr and exit code 2 (a store another process keeps locked past
    CADENZA_DB_TIMEOUT, a full disk, a damaged store file among them)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"cadenza.cli.{module}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in sorted(set(COMMANDS.values())):
            importlib.import_module(f"cadenza.cli.{module}")
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CadenzaError as exc:
            errors.print(error_line("error:", exc), soft_wrap=True)
            sys.exit(EXIT_USAGE)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="CADENZA_HOME",
              help="The .cadenza folder holding state (default: the nearest one from here "
                   "up to the project root that you own; see docs/stores.md).")
@click.option("--db", metavar="PATH|URL",
              help="The metadata store, if not HOME/cadenza.db: a SQLite file or "
                   "postgresql://USER@HOST/DB (default: $CADENZA_DB, else db in cadenza.toml "
                   "or [tool.cadenza]; see docs/stores.md).")
@click.option("--artifacts", metavar="PATH|URL",
              help="Where artifacts are kept, if not HOME/artifacts: a folder or an fsspec "
                   "URL such as s3://bucket/prefix (default: $CADENZA_ARTIFACTS, else "
                   "artifacts in the config).")
@click.version_option(package_name="cadenza")
@click.pass_context
def main(ctx: click.Context, home: Path | None, db: str | None, artifacts: str | None
         ) -> None:
    """cadenza: run data and ML pipelines of plain Python functions, durably and incrementally."""
    from cadenza.store.sqlite import timeout_from_env

    from_env = ctx.get_parameter_source("home") == ParameterSource.ENVIRONMENT
    # CADENZA_DB_TIMEOUT is checked here, once, so that a bad value is an error before any
    # work; each store opened in this process (the scheduler's runs too) reads the same value.
    timeout_from_env()
    ctx.obj = {"home": home, "home_from_env": from_env, "db": db, "artifacts": artifacts}


def _location(ctx: click.Context) -> Location:
    """Where the store is for this command (see cadenza.workspace for the rule)."""
    found = locate(ctx.obj["home"], db=ctx.obj.get("db"), artifacts=ctx.obj.get("artifacts"))
    return dataclasses.replace(found, source="env") if ctx.obj.get("home_from_env") else found


@contextmanager
def _workspace(ctx: click.Context, *, create: bool = False, write: bool = False,
               missing_ok: bool = False) -> Iterator[Workspace]:
    """The command's workspace. By default it only reads: it needs a store and writes nothing
    to it. ``write``: it may write to the store found; ``create``: it may also make one, and
    says which it uses when that is not the working directory's. ``missing_ok``: with no store
    found, say so and give an empty one in memory (``plan`` before the first run)."""
    found = _location(ctx)
    if missing_ok and not found.exists:
        skipped = f" ({found.skipped()})" if found.foreign is not None else ""
        errors.print(f"note: no store was found {found.searched()}{skipped}; this is what a "
                     "first run would do.", soft_wrap=True)
        ws = Workspace.memory(found.start)
    else:
        ws = Workspace.open(found, create=create, readonly=not (create or write))
    if create:
        _say_where(found)
    try:
        yield ws
    finally:
        ws.close()


def _say_where(found: Location) -> None:
    """One line on stderr when the store a run writes to is not ./.cadenza."""
    if found.foreign is not None:
        errors.print(f"note: {found.skipped()}; using a new store at {found.home}",
                     soft_wrap=True)
    elif found.source == "above":
        errors.print(f"using the store at {found.home} (found above the current folder)",
                     soft_wrap=True)
    elif found.source == "env" and found.home != found.start / HOME_DIR:
        errors.print(f"using the store at {found.home} (from $CADENZA_HOME)", soft_wrap=True)
    # a store or artifacts put elsewhere by the environment or the config: say so, since
    # nothing on the command line shows it
    if found.db is not None and found.db_from != "--db":
        errors.print(f"using the store at {found.where} (from {found.db_from})",
                     soft_wrap=True)
    if found.artifacts is not None and found.artifacts_from != "--artifacts":
        errors.print(f"using the artifacts at {describe(found.artifacts)} (from "
                     f"{found.artifacts_from})", soft_wrap=True)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """" Did you mean 'x'?" for the known name closest to ``name`` (ignoring case), or ""."""
    import difflib  # only an error needs it

    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" Did you mean {by_lower[close[0]]!r}?" if close else ""


def _listing(names: Iterable[str], most: int = 8) -> str:
    shown = sorted(names)
    return ", ".join(shown[:most]) + (", ..." if len(shown) > most else "") or "none"


def check_pipeline(ws: Workspace, pipeline: str | None) -> None:
    """Raise unless the store knows ``pipeline`` (it has runs, or was paused): a mistyped name
    is an error, not an empty answer. None passes."""
    if pipeline is None:
        return
    known = set(ws.store.pipelines()) | ws.store.paused()
    if pipeline not in known:
        raise CadenzaError(
            f"No pipeline named {pipeline!r} has runs in the store at {ws.where!r}."
            f"{did_you_mean(pipeline, known)} Pipelines there: {_listing(known)}."
        )


def check_task(ws: Workspace, pipeline: str, task: str) -> None:
    """Raise unless ``task`` is a task of ``pipeline``'s newest run or has stored outputs."""
    newest = ws.store.list_runs(pipeline, 1)
    tasks = {ti.task for ti in ws.store.task_instances(newest[0].run_id, mapped=False)
             } if newest else set()
    if task not in tasks and not ws.store.versions(pipeline, task, limit=1):
        raise CadenzaError(
            f"Pipeline {pipeline!r} has no task {task!r} (in its newest run)."
            f"{did_you_mean(task, tasks)} Its tasks: {_listing(tasks, 20)}."
        )


_AMBIGUOUS = 6  # stop looking once this many runs match a prefix
_PAGE = 500


def resolve_run(ws: Workspace, text: str) -> str:
    """The id of the run ``text`` names: a full id, a unique prefix of one, or ``latest`` (the
    newest run of all)."""
    if text == "latest":
        newest = ws.store.list_runs(None, 1)
        if not newest:
            raise CadenzaError(f"There is no latest run: the store at {ws.where!r} has no "
                               "runs yet. Start one with `cadenza run PIPELINE`.")
        return newest[0].run_id
    try:
        return ws.store.get_run(text).run_id
    except RunNotFoundError:
        pass
    found: list[str] = []
    # ids are PIPELINE-STAMP-HEX: only the pipelines whose ids can start with text are read
    for pipeline in ws.store.pipelines() if text else ():
        head = pipeline + "-"
        offset = 0
        while (head.startswith(text) or text.startswith(head)) and len(found) < _AMBIGUOUS:
            page = ws.store.list_runs(pipeline, _PAGE, offset)
            found += [r.run_id for r in page if r.run_id.startswith(text)]
            if len(page) < _PAGE:
                break
            offset += _PAGE
    if len(found) == 1:
        return found[0]
    if found:
        many = "More than 5" if len(found) >= _AMBIGUOUS else str(len(found))
        raise CadenzaError(
            f"{many} runs have ids starting {text!r}: {', '.join(found[:5])}"
            f"{', ...' if len(found) > 5 else ''}. Give more of the id."
        )
    recent = [r.run_id for r in ws.store.list_runs(None, 200)]
    raise CadenzaError(
        f"No run has the id {text!r}, or an id starting with it, in the store at "
        f"{ws.where!r}.{did_you_mean(text, recent)} List runs with `cadenza runs`; "
        "`latest` names the newest."
    )


def _json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def _params_option(fn: F) -> F:
    return click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
                        help="Set a run param (repeatable).")(fn)


def _selection_options(fn: F) -> F:
    fn = click.option("--only", multiple=True, metavar="TASK",
                      help="Run only this task (repeatable); others reuse stored outputs.")(fn)
    fn = click.option("--from", "from_", multiple=True, metavar="TASK",
                      help="Run this task and everything downstream of it.")(fn)
    return click.option("--force", is_flag=True, help="Ignore the cache: run every task.")(fn)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
