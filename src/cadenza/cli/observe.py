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
