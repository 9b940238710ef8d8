"""`cadenza alerts test` and `cadenza lineage`: the observability commands."""

from __future__ import annotations

import sys
from typing import Any

import click

from cadenza._loader import load_pipeline
from cadenza.cli._base import EXIT_FAILED, check_pipeline, check_task, console, main
from cadenza.exceptions import CadenzaError


@main.group()
def alerts() -> None:
    """Alerts: check that a pipeline's notifiers reach their peers."""


@alerts.command(name="test")
@click.argument("target")
def alerts_test(target: str) -> None:
    """Send a test alert through every notifier of the pipeline at TARGET."""
    from cadenza.alerts import send_test

    pipe = load_pipeline(target)
    router = pipe.alert_router()
    if router is None:
        raise CadenzaError(
            f"Pipeline {pipe.name!r} has no alerts; add alerts=[WebhookNotifier(url), ...]."
        )
    notifiers = list({id(n): n for route in router.routes for n in route.notifiers}.values())
    results = send_test(notifiers, pipe.name)
    for notifier, error in results:
        console.print(f"{'FAILED' if error else 'sent  '} {notifier}"
                      + (f": {error}" if error else ""), highlight=False)
    sys.exit(EXIT_FAILED if any(error for _, error in results) else 0)


@main.command()
@click.argument("artifact")
@click.option("--upstream/--downstream", default=True,
              help="What it was made from (default), or what was made from it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def lineage(ctx: click.Context, artifact: str, upstream: bool, as_json: bool) -> None:
    """Print the lineage tree of ARTIFACT (a content hash, or a unique prefix of one)."""
    import json

    from cadenza.cli._base import _workspace
    from cadenza.lineage import find_artifact, format_tree, lineage_tree

    with _workspace(ctx) as ws:
        record = find_artifact(ws.store, artifact)
        tree = lineage_tree(ws.store, record.hash, "upstream" if upstream else "downstream")
    if as_json:
        click.echo(json.dumps(tree.to_dict(), indent=2))
    else:
        click.echo(format_tree(tree))


@main.group()
def artifacts() -> None:
    """Versions of task outputs, and aliases such as `active`."""


@artifacts.command(name="ls")
@click.option("--pipeline", help="Only this pipeline's artifacts.")
@click.option("--task", help="Only this task's versions (with --pipeline).")
@click.option("--limit", "-n", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def artifacts_ls(ctx: click.Context, pipeline: str | None, task: str | None, limit: int,
                 as_json: bool) -> None:
    """List stored artifacts, newest first, marking the versions aliases point at."""
    import json
    import time

    from rich.table import Table

    from cadenza.cli._base import _workspace

    if task is not None and pipeline is None:
        raise CadenzaError("--task needs --pipeline.")
    with _workspace(ctx) as ws:
        check_pipeline(ws, pipeline)
        if task is not None and pipeline is not None:
            check_task(ws, pipeline, task)
            records = ws.store.versions(pipeline, task, limit=limit)
        else:
            records = ws.store.artifacts(pipeline, limit)
        aliases: dict[str, list[str]] = {}
        for pipe_task in {(r.pipeline, r.task, r.name) for r in records}:
            for alias in ("active",):
                history = ws.store.alias_history(pipe_task[0], pipe_task[1], alias, pipe_task[2])
                if history:
                    aliases.setdefault(history[0].hash, []).append(alias)
    rows: list[dict[str, Any]] = [
        {"hash": r.hash, "pipeline": r.pipeline, "task": r.task, "name": r.name,
         "serializer": r.serializer, "size": r.size, "created_at": r.created_at,
         "run_id": r.run_id, "parents": list(r.parents), "aliases": aliases.get(r.hash, [])}
        for r in records
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("hash", "pipeline.task", "output", "kind", "size", "created", "aliases"):
        table.add_column(column, no_wrap=column in ("hash", "pipeline.task", "created"))
    for row in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"]))
        table.add_row(row["hash"][:12], f"{row['pipeline']}.{row['task']}", row["name"],
                      row["serializer"], str(row["size"]), created, ", ".join(row["aliases"]))
    console.print(table if rows else "no artifacts yet")


@artifacts.command(name="show")
@click.argument("version")
@click.pass_context
def artifacts_show(ctx: click.Context, version: str) -> None:
    """Show one artifact (a hash or unique prefix): where it came from and a preview."""
    from cadenza.cli._base import _workspace
    from cadenza.engine.result import load_value
    from cadenza.lineage import find_artifact

    with _workspace(ctx) as ws:
        record = find_artifact(ws.store, version)
        console.print(f"{record.hash}\n  {record.pipeline}.{record.task} ({record.name}), "
                      f"{record.serializer}, {record.size} bytes, run {record.run_id}\n"
                      f"  made from: {', '.join(p[:12] for p in record.parents) or 'nothing'}",
                      highlight=False)
        if record.serializer != "file":
            console.print("  value: " + repr(load_value(ws, record.hash))[:500], highlight=False)


@artifacts.command(name="tag")
@click.argument("pipeline")
@click.argument("task")
@click.argument("version", required=False)
@click.option("--alias", default="active", show_default=True)
@click.option("--output", "name", default="return", show_default=True,
              help="Which output: return, or a declared file's name.")
@click.pass_context
def artifacts_tag(ctx: click.Context, pipeline: str, task: str, version: str | None,
                  alias: str, name: str) -> None:
    """Point ALIAS at VERSION of TASK's output (default: the newest version)."""
    import getpass

    from cadenza.artifacts import promote
    from cadenza.cli._base import _workspace

    with _workspace(ctx) as ws:  # names are checked before anything is written
        check_pipeline(ws, pipeline)
        check_task(ws, pipeline, task)
        home = ws.home
    digest = promote(pipeline, task, version, alias=alias, name=name, by=getpass.getuser(),
                     home=home)
    console.print(f"{pipeline}.{task} {alias} -> {digest[:12]}", highlight=False)


@artifacts.command(name="rollback")
@click.argument("pipeline")
@click.argument("task")
@click.option("--alias", default="active", show_default=True)
@click.option("--output", "name", default="return", show_default=True)
@click.pass_context
def artifacts_rollback(ctx: click.Context, pipeline: str, task: str, alias: str,
                       name: str) -> None:
    """Point ALIAS back at the version it pointed at before."""
    import getpass

    from cadenza.artifacts import rollback
    from cadenza.cli._base import _workspace

    with _workspace(ctx) as ws:  # names are checked before anything is written
        check_pipeline(ws, pipeline)
        check_task(ws, pipeline, task)
        home = ws.home
    digest = rollback(pipeline, task, alias=alias, name=name, by=getpass.getuser(),
                      home=home)
    console.print(f"{pipeline}.{task} {alias} rolled back to {digest[:12]}", highlight=False)
