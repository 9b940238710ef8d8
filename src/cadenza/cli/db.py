"""`cadenza db upgrade` and `cadenza db current`: the metadata store's schema version."""

from __future__ import annotations

import sys

import click

from cadenza._files import make_home
from cadenza.cli._base import (
    EXIT_FAILED,
    _json_option,
    _location,
    _print_json,
    _say_where,
    console,
    main,
)
from cadenza.store.migrations import latest, pending
from cadenza.store.open import backend, open_store
from cadenza.workspace import DB_FILE, NoStoreError


@main.group()
def db() -> None:
    """The metadata store's schema: which version it is at, and bringing it up to date.
    The store is the one every command uses (--db, $CADENZA_DB, the config, else
    .cadenza/cadenza.db; see docs/stores.md)."""


@db.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Create the store's schema or bring it up to date, printing each migration applied.
    Running it again changes nothing; two at once apply each migration once."""
    found = _location(ctx)
    if found.db is None:
        make_home(found.home)
    _say_where(found)
    store = open_store(found.db or found.home / DB_FILE, upgrade=False)
    try:
        applied = store.upgrade()
        version = store.schema_version()
    finally:
        store.close()
    for migration in applied:
        console.print(f"applied {migration.version:04d}_{migration.name}", soft_wrap=True)
    shown = found.where if found.db is not None else str(found.home / DB_FILE)
    if applied:
        console.print(f"the store at {shown} is at version {version}, the latest",
                      soft_wrap=True)
    else:
        console.print(f"the store at {shown} is already at version {version}, the "
                      "latest; nothing to do", soft_wrap=True)


@db.command()
@click.option("--check", is_flag=True,
              help="Exit with code 1 when migrations are pending (for deploy scripts).")
@_json_option
@click.pass_context
def current(ctx: click.Context, check: bool, as_json: bool) -> None:
    """Print the store's schema version and the migrations it lacks. Exits 0 when the version
    could be read, as `alembic current` does; with --check, 1 when migrations are pending.
    A store newer than this cadenza, or none at all, is an error (exit 2)."""
    found = _location(ctx)
    if not found.exists:
        raise NoStoreError(found)
    kind = backend(found.db) if found.db is not None else "sqlite"
    shown = found.where if found.db is not None else str(found.home / DB_FILE)
    # opened for writing, not upgraded: a read-only open refuses a store that is behind
    store = open_store(found.db or found.home / DB_FILE, upgrade=False)
    try:
        version = store.schema_version()
    finally:
        store.close()
    todo = pending(kind, version, shown)
    if as_json:
        _print_json({"store": shown, "backend": kind, "version": version,
                     "latest": latest(kind),
                     "pending": [f"{m.version:04d}_{m.name}" for m in todo]})
    else:
        console.print(f"store: {shown} ({kind})", soft_wrap=True)
        if todo:
            names = ", ".join(f"{m.version:04d}_{m.name}" for m in todo)
            console.print(f"version {version}; this cadenza's latest is {latest(kind)}: "
                          f"{len(todo)} pending ({names}). Run `cadenza db upgrade`.",
                          soft_wrap=True)
        else:
            console.print(f"version {version} (the latest): up to date", soft_wrap=True)
    if check and todo:
        sys.exit(EXIT_FAILED)
