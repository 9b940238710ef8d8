"""Alerts wired into runs and the scheduler: routed, deduplicated across runs, failures
recorded, and `cadenza alerts test`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza import Pipeline
from cadenza.alerts import MemoryNotifier, WebhookNotifier
from cadenza.cli import main
from cadenza.schedule.scheduler import Entry, Scheduler
from cadenza.workspace import Workspace


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_failure_reaches_the_webhook_once_across_runs(
    home: Path, webhook: tuple[str, list[dict[str, object]]]
) -> None:
    url, received = webhook
    per_task = MemoryNotifier()
    pipe = Pipeline("watched", alerts=[WebhookNotifier(url)])

    @pipe.task(cache=False, alerts=[per_task])
    def load() -> None:
        raise ValueError("source is down")

    @pipe.task(cache=False)
    def other() -> int:
        return 1

    pipe.run(home=home)
    pipe.run(home=home)  # the same failure again, inside the dedup window
    kinds = sorted(str(r["kind"]) for r in received)
    assert kinds == ["failed", "run_finished"]
    failed = next(r for r in received if r["kind"] == "failed")
    assert "watched: task 'load' failed" in str(failed["text"])
    assert [a.kind for a in per_task.alerts] == ["failed"]


def test_a_failing_notifier_is_recorded_and_the_run_is_not_failed_by_it(home: Path) -> None:
    pipe = Pipeline("unreachable", alerts=[WebhookNotifier("http://127.0.0.1:9/nowhere",
                                                           timeout=1)])

    @pipe.task
    def broken() -> None:
        raise RuntimeError("boom")

    result = pipe.run(home=home)
    assert result.state == "failed"  # from the task, not from the notifier
    events = Workspace.open(home).store.events(result.run_id)
    assert any(e.kind == "delivery_error" for e in events)


def test_a_sensor_error_is_alerted(home: Path) -> None:
    memory = MemoryNotifier()
    pipe = Pipeline("sensing", alerts=[memory])

    @pipe.sensor
    def flaky() -> bool:
        raise ConnectionError("bucket unreachable")

    @pipe.task
    def t() -> None: ...

    Scheduler([Entry(pipe, "x")], home).tick(1_800_000_000)
    pipe.alert_router().flush(5)  # type: ignore[union-attr]
    assert [a.kind for a in memory.alerts] == ["sensor_error"]
    assert "bucket unreachable" in memory.alerts[0].summary


def test_cli_alerts_test(tmp_path: Path, webhook: tuple[str, list[dict[str, object]]]) -> None:
    url, received = webhook
    (tmp_path / "p.py").write_text(
        "from cadenza import Pipeline\nfrom cadenza.alerts import WebhookNotifier\n"
        f"pipe = Pipeline('alerted', alerts=[WebhookNotifier({url!r})])\n"
        "@pipe.task\ndef t():\n    return 1\n"
    )
    result = CliRunner().invoke(main, ["alerts", "test", str(tmp_path / "p.py")])
    assert result.exit_code == 0, result.output
    assert "sent" in result.output and received and received[0]["kind"] == "test"
    (tmp_path / "q.py").write_text("from cadenza import Pipeline\npipe = Pipeline('quiet')\n")
    quiet = CliRunner().invoke(main, ["alerts", "test", str(tmp_path / "q.py")])
    assert quiet.exit_code == 2 and "has no alerts" in quiet.output
