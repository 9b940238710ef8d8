"""`cadenza init`: make a store on purpose, in the current folder (or --home)."""

from __future__ import annotations

from pathlib import Path

import click

from cadenza.cli._base import console, errors, main
from cadenza.workspace import HOME_DIR, Location, Workspace, locate


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Make a .cadenza store in the current folder (or at --home); say where. Running it
    again changes nothing."""
    home = ctx.obj["home"]
    here = Path.cwd().resolve()
    target = locate(home if home is not None else here / HOME_DIR, db=ctx.obj["db"],
                    artifacts=ctx.obj["artifacts"])
    existed = target.home.is_dir()
    if not existed and home is None:
        _warn_shadowing(locate(None, here))
    Workspace.open(target, create=True).close()
    console.print(f"a store is already at {target.home}; nothing changed" if existed
                  else f"made a store at {target.home}", soft_wrap=True)


def _warn_shadowing(outer: Location) -> None:
    """Say when the new store hides one above it that commands here used until now."""
    if outer.source == "above":
        errors.print(f"note: commands run in this folder now use this store, not "
                     f"{outer.home}", soft_wrap=True)
