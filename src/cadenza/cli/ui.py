"""`cadenza ui`: the web UI and JSON API in one process, with a scheduler inside it so that
runs triggered, retried or approved in the browser start (as with `dagster dev`)."""

from __future__ import annotations

import os
import threading
from contextlib import closing
from pathlib import Path

import click

from cadenza._words import plural
from cadenza.cli._base import _location, console, error_line, errors, main
from cadenza.cli.schedule import load_entries
from cadenza.engine.claim import stale_after_from
from cadenza.exceptions import CadenzaError
from cadenza.executors import EXECUTORS
from cadenza.metrics import Metrics
from cadenza.schedule.scheduler import Entry, Scheduler, SchedulerBusyError, lease_from
from cadenza.workspace import Location, Workspace

RETRY_LEASE = 5.0
"""Seconds between tries to take the scheduler lease while another scheduler holds it."""


@main.command()
@click.argument("targets", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any but a loopback one needs --token or --user.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--token", envvar="CADENZA_UI_TOKEN",
              help="The login and API token (default: a new random one per start, printed). "
                   "On a command line every local user sees it in `ps`: prefer "
                   "CADENZA_UI_TOKEN or --token-file.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the token from this file (its first line).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Also answer requests whose Host is NAME (e.g. the name a proxy forwards); "
                   "repeatable. Others get 400, which stops DNS rebinding. '*' allows any.")
@click.option("--user", envvar="CADENZA_UI_USER", help="A user who logs in with a password.")
@click.option("--password-hash", envvar="CADENZA_UI_PASSWORD_HASH",
              help="The --user's password hash, made by `cadenza ui --hash-password`.")
@click.option("--hash-password", is_flag=True,
              help="Ask for a password, print its hash for CADENZA_UI_PASSWORD_HASH, exit.")
@click.option("--scheduler/--no-scheduler", default=True, show_default=True,
              help="Also start queued, scheduled and approved runs (unless another "
                   "scheduler holds the store's lease).")
@click.option("--executor", "-e", type=click.Choice(EXECUTORS), default="threads",
              show_default=True, help="Executor of the runs the scheduler starts.")
@click.pass_context
def ui(ctx: click.Context, targets: tuple[str, ...], host: str, port: int, token: str | None,
       token_file: Path | None, allowed_hosts: tuple[str, ...], user: str | None,
       password_hash: str | None, hash_password: bool, scheduler: bool, executor: str) -> None:
    """Serve the web UI and the JSON API (/api/v1) for the pipelines of TARGETS (default: the
    project's list in cadenza.toml or [tool.cadenza]) and every run in the store."""
    try:
        import uvicorn

        from cadenza.web.app import create_app
        from cadenza.web.guard import Hosts
        from cadenza.web.read import Site
        from cadenza.web.security import Auth, check_bind
        from cadenza.web.security import hash_password as make_hash
    except ImportError as exc:
        raise CadenzaError(
            f"The web UI needs its extra dependencies ({exc.name} is missing): "
            "pip install 'cadenza[ui]'."
        ) from None
    if hash_password:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True,
                                default="", show_default=False)
        if not password:
            raise click.UsageError("An empty password protects nothing; type one.")
        click.echo(make_hash(password))
        return
    token = _token(ctx, token, token_file)
    entries, failed = load_entries(ctx, targets)
    for target, why in failed.items():
        errors.print(error_line(f"cannot load {target}:", why))
    with closing(Workspace.open(_location(ctx))) as site_ws:
        home = site_ws.home
        auth = Auth.for_home(home, token=token, user=user, password_hash=password_hash,
                             port=port)
        check_bind(host, auth)
        metrics = Metrics()
        app = create_app(Site(site_ws, {e.pipeline.name: e for e in entries}, failed), auth,
                         metrics, hosts=Hosts.for_bind(host, allowed_hosts))
        stop = threading.Event()
        worker = None
        if scheduler and entries:
            timing = (stale_after_from(os.environ), lease_from(os.environ))  # bad: one line now
            worker = threading.Thread(target=_schedule,
                                      args=(entries, site_ws.location or home, executor,
                                            metrics, stop, *timing),
                                      name="cadenza-ui-scheduler", daemon=True)
            worker.start()
        shown = "localhost" if host in ("127.0.0.1", "::1") else host
        where = f"http://{shown}:{port}/"
        console.print(f"cadenza ui: {where}  ({plural(len(entries), 'pipeline')}; store {home})",
                      highlight=False)
        if not auth.configured:  # only a token cadenza made: one of yours stays yours
            console.print(f"log in at {where}?token={auth.token}", highlight=False)
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning")
        finally:
            stop.set()
            if worker is not None:
                worker.join(timeout=30)


def _token(ctx: click.Context, token: str | None, token_file: Path | None) -> str | None:
    """The token from --token, CADENZA_UI_TOKEN or --token-file; a warning for the first."""
    given_on_line = ctx.get_parameter_source("token") == click.core.ParameterSource.COMMANDLINE
    if token_file is not None:
        if token is not None:
            raise click.UsageError("Give the token once: --token (or CADENZA_UI_TOKEN) or "
                                   "--token-file, not both.")
        lines = token_file.read_text(encoding="utf-8").splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise click.UsageError(f"The token file {str(token_file)!r} is empty; put the "
                                   "token on its first line.")
    elif given_on_line:
        errors.print("note: a --token on the command line is visible to every user of this "
                     "machine (ps, /proc); prefer --token-file or CADENZA_UI_TOKEN.",
                     highlight=False)
    return token


def _schedule(entries: list[Entry], home: Path | Location, executor: str, metrics: Metrics,
              stop: threading.Event, stale_after: float, lease: float) -> None:
    sched = Scheduler(entries, home, executor=executor, metrics=metrics,
                      stale_after=stale_after, lease=lease)
    try:
        while not stop.is_set():
            try:
                sched.serve(stop, every=0.5)
            except SchedulerBusyError:  # another scheduler serves this store; be its stand-in
                stop.wait(RETRY_LEASE)
    except Exception as exc:  # the UI stays up; say why runs no longer start
        errors.print(error_line("the UI's scheduler stopped:", exc))
    finally:
        sched.close()
