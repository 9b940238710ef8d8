"""`cadenza ui` as a user starts it: a real uvicorn server in a subprocess."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.web._server import serve

from cadenza.cli import main
from cadenza.web.security import verify_password

DEMO = str(Path(__file__).parents[1] / "pipelines" / "web_demo.py")
TOKEN = "a-real-token-4567"


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def server(home: Path) -> Iterator[str]:
    with serve(home, DEMO, TOKEN) as found:
        yield found.url


def test_ui_serves_and_guards_and_runs_what_is_triggered(server: str) -> None:
    assert _get(server + "/health") == (200, {"status": "ok"})
    assert _get(server + "/api/v1/pipelines")[0] == 401
    status, data = _get(server + "/api/v1/pipelines", TOKEN)
    assert status == 200 and [p["name"] for p in data["pipelines"]] == ["web_demo"]
    request = urllib.request.Request(
        server + "/api/v1/pipelines/web_demo/runs", method="POST",
        data=json.dumps({"params": {"threshold": 0.2}}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        run_id = json.loads(response.read())["run_id"]
    deadline = time.monotonic() + 30
    state = "queued"
    while state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        state = str(_get(f"{server}/api/v1/runs/{run_id}", TOKEN)[1]["state"])
    assert state == "waiting"  # the scheduler inside the UI ran it up to its gate
    # Its metrics are counted once the run's end is recorded: a moment after the state. (The
    # scheduler also ran web_demo's latest 06:00 interval, which waits at the gate as well.)
    counted = 'cadenza_runs_total{pipeline="web_demo",state="waiting"}'
    scrape = urllib.request.Request(server + "/metrics",
                                    headers={"Authorization": f"Bearer {TOKEN}"})
    deadline, text = time.monotonic() + 10, ""
    while counted not in text and time.monotonic() < deadline:
        with urllib.request.urlopen(scrape, timeout=5) as response:
            text = response.read().decode()
        time.sleep(0.1)
    assert counted in text, text


def test_any_address_but_loopback_needs_configured_auth(home: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(home), "ui", DEMO, "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "0.0.0.0" in result.output and "--token" in result.output


def test_hash_password_prints_a_hash_that_verifies(home: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(home), "ui", "--hash-password"],
                                input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    assert verify_password("s3cret-pass", result.output.strip().splitlines()[-1])


def test_a_user_without_a_password_hash_is_refused(home: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(home), "ui", DEMO, "--user", "ann"],
                                env={"CADENZA_UI_PASSWORD_HASH": ""})
    assert result.exit_code == 2 and "--hash-password" in result.output


@pytest.mark.parametrize(("env", "words"), [
    ({"CADENZA_SCHEDULER_LEASE": "soon"}, "CADENZA_SCHEDULER_LEASE='soon'"),
    ({"CADENZA_STALE_AFTER": "never"}, "CADENZA_STALE_AFTER"),
])
def test_the_uis_scheduler_reads_the_schedulers_settings(home: Path, env: dict[str, str],
                                                          words: str) -> None:
    # The UI's scheduler stands in for `cadenza scheduler`: it takes its lease and staleness
    # from the same variables, and a bad one stops the UI at start, not its scheduler later.
    result = CliRunner().invoke(main, ["--home", str(home), "ui", DEMO, "--port", "1"], env=env)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and words in lines[0], result.output
    assert "Traceback" not in result.output
