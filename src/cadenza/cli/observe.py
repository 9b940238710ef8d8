"""`cadenza alerts test` and `cadenza lineage`: the observability commands."""

from __future__ import annotations

import sys

import click

from cadenza._loader import load_pipeline
from cadenza.cli._base import EXIT_FAILED, console, main
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
