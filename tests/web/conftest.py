"""A workspace holding finished, failed, running and gated runs of tests/pipelines/web_demo.py,
and the UI over it, for the web tests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from cadenza._loader import load_pipeline
from cadenza.engine.launch import run_pipeline
from cadenza.schedule.scheduler import Entry
from cadenza.store.base import AttemptRecord, Batch, Event, RunRecord, TaskInstanceRecord
from cadenza.web import Site, create_app
from cadenza.web.security import Auth
from cadenza.workspace import Workspace

TARGET = str(Path(__file__).parents[1] / "pipelines" / "web_demo.py")
TOKEN = "test-token-123"


@dataclass
class World:
    home: Path
    site: Site
    auth: Auth
    runs: dict[str, str]
    """success, failed, waiting, running -> run id."""


def build_world(home: Path) -> World:
    pipe = load_pipeline(TARGET)
    ws = Workspace.open(home)
    runs = {
        "success": run_pipeline(pipe, {"threshold": 0.5}, workspace=ws, target=TARGET,
                                approve=["approve_gate"]).run_id,
        "failed": run_pipeline(pipe, {"threshold": 0.95}, workspace=ws, target=TARGET).run_id,
        "waiting": run_pipeline(pipe, {"threshold": 0.4}, workspace=ws, target=TARGET).run_id,
    }
    now = time.time()
    running = RunRecord("web_demo-20261122T100000-abcdef", "web_demo", "running",
                        {"threshold": 0.5, "region": "us"}, now - 5, target=TARGET,
                        started_at=now - 5, runner_pid=os.getpid(), heartbeat=now)
    log = home / "logs" / "web_demo" / running.run_id / "validate" / "1.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("starting validate\n")
    ws.store.apply(Batch(
        runs=[running],
        task_instances=[
            TaskInstanceRecord(running.run_id, "extract", -1, "success", 1, started_at=now - 5,
                               ended_at=now - 4),
            TaskInstanceRecord(running.run_id, "validate", -1, "running", 1, started_at=now - 4),
            TaskInstanceRecord(running.run_id, "approve_gate", -1, "pending"),
            TaskInstanceRecord(running.run_id, "publish", -1, "pending"),
        ],
        attempts=[
            AttemptRecord(running.run_id, "extract", -1, 1, "success", now - 5, now - 4),
            AttemptRecord(running.run_id, "validate", -1, 1, "running", now - 4,
                          log_path=str(log)),
        ],
        events=[Event(running.run_id, "run_started", now - 5, data={"upstream": {
            "extract": [], "validate": ["extract"], "approve_gate": ["validate"],
            "publish": ["approve_gate", "validate"]}})],
    ))
    runs["running"] = running.run_id
    site = Site(ws, {pipe.name: Entry(pipe, TARGET)})
    return World(home, site, Auth.for_home(home, token=TOKEN), runs)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    found = build_world(tmp_path_factory.mktemp("web") / ".cadenza")
    yield found
    found.site.workspace.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    """Authenticated by the API token (no cookie, so no CSRF token needed)."""
    with TestClient(create_app(world.site, world.auth),
                    headers={"Authorization": f"Bearer {TOKEN}"}) as found:
        yield found


@pytest.fixture
def anonymous(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.site, world.auth)) as found:
        yield found
