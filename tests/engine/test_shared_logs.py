"""Task logs reach every host when the artifacts are shared: an attempt's logs (masked as
written) are copied into the bucket and named by a ``log_stored`` event, and `cadenza logs`
and the UI's log endpoint on another host (another project folder, the same PostgreSQL
database and S3 bucket) show them. A store of this host's own copies nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cadenza.testing.artifacts import MotoS3
from cadenza.testing.postgres import PostgresServer
from cadenza.workspace import Workspace, locate

PIPELINE = '''
from cadenza import Param, Pipeline

pipe = Pipeline("chatty", params={"token": Param("tok-5e3cr3t-77", secret=True)})


@pipe.task
def talk(token: str) -> int:
    print("hello from host a")
    print(f"using {token}")
    return 1


@pipe.task
def fail(talk: int) -> int:
    print("about to fail")
    raise ValueError("no more")
'''


def cadenza(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cadenza", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _host(root: Path) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    (root / "chatty.py").write_text(PIPELINE)
    return root


def test_logs_of_another_host_are_shown_from_the_bucket(
        tmp_path: Path, postgres_server: PostgresServer, s3_server: MotoS3,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "CADENZA_DB": postgres_server.new_database("logs_shared"),
           "CADENZA_ARTIFACTS": f"s3://{s3_server.bucket()}/team",
           "CADENZA_ARTIFACTS_OPTIONS": json.dumps(s3_server.options), "NO_COLOR": "1"}
    env.pop("CADENZA_HOME", None)
    a, b = _host(tmp_path / "a"), _host(tmp_path / "b")
    ran = cadenza("run", "chatty.py", cwd=a, env=env)
    assert ran.returncode == 1, ran.stdout + ran.stderr  # fail failed, as it should

    shown = cadenza("logs", "latest", cwd=b, env=env)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "hello from host a" in out and "using ***" in out and "about to fail" in out
    assert "ValueError: no more" in out
    assert "tok-5e3cr3t-77" not in out
    assert not (b / ".cadenza" / "logs").exists()  # nothing of it ran here

    from starlette.testclient import TestClient

    from cadenza.web import Site, create_app
    from cadenza.web.security import Auth

    monkeypatch.setenv("CADENZA_ARTIFACTS_OPTIONS", env["CADENZA_ARTIFACTS_OPTIONS"])
    ws = Workspace.open(locate(b / ".cadenza", db=env["CADENZA_DB"],
                               artifacts=env["CADENZA_ARTIFACTS"]))
    try:
        [run] = ws.store.list_runs("chatty", 5)
        app = create_app(Site(ws, {}), Auth.for_home(b / ".cadenza", token="t" * 32))
        with TestClient(app, headers={"Authorization": "Bearer " + "t" * 32}) as client:
            piece = client.get(f"/api/v1/runs/{run.run_id}/tasks/talk/attempts/1/log")
        assert piece.status_code == 200, piece.text
        assert piece.json()["text"] == "hello from host a\nusing ***\n"
        assert piece.json()["done"] is True
    finally:
        ws.close()


def test_a_store_of_this_host_copies_no_log(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    for name in ("CADENZA_HOME", "CADENZA_DB", "CADENZA_ARTIFACTS"):
        env.pop(name, None)
    a = _host(tmp_path / "a")
    assert cadenza("run", "chatty.py", cwd=a, env=env).returncode == 1
    ws = Workspace.open(a / ".cadenza")
    try:
        [run] = ws.store.list_runs("chatty", 5)
        assert [e for e in ws.store.events(run.run_id) if e.kind == "log_stored"] == []
    finally:
        ws.close()
