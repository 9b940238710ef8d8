"""The `cadenza` group and what its commands share: exit codes, options, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from cadenza.exceptions import CadenzaError
from cadenza.workspace import Workspace

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


class _Group(click.Group):
    """Turns every CadenzaError into one red line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CadenzaError as exc:
            errors.print(error_line("error:", exc), soft_wrap=True)
            sys.exit(EXIT_USAGE)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="CADENZA_HOME",
              help="The .cadenza folder holding state (default: found from here upward).")
@click.version_option(package_name="cadenza")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """cadenza: run data and ML pipelines of plain Python functions, durably and incrementally."""
    ctx.obj = {"home": home}


@contextmanager
def _workspace(ctx: click.Context) -> Iterator[Workspace]:
    ws = Workspace.open(ctx.obj["home"])
    try:
        yield ws
    finally:
        ws.close()


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
