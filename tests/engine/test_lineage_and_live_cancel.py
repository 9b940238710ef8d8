"""Lineage between artifacts, and cancelling a run from another process while it runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from cadenza import Pipeline
from cadenza.workspace import Workspace


def test_each_artifact_records_what_it_was_computed_from(home: Path) -> None:
    pipe = Pipeline("lineage")

    @pipe.task
    def raw() -> list[int]:
        return [1, 2]

    @pipe.task
    def other() -> str:
        return "o"

    @pipe.task
    def joined(raw: list[int], other: str) -> str:
        return f"{other}{sum(raw)}"

    result = pipe.run(home=home)
    store = Workspace.open(home).store
    record = store.artifact(result.tasks["joined"].output or "")
    assert record is not None and record.task == "joined" and record.serializer == "json"
    assert set(record.parents) == {result.tasks["raw"].output, result.tasks["other"].output}
    assert store.artifact(result.tasks["raw"].output or "").parents == ()  # type: ignore[union-attr]


PIPELINE = '''
import time
from cadenza import Pipeline
pipe = Pipeline("long")

@pipe.task(cache=False)
def sleeper():
    print("going to sleep", flush=True)
    time.sleep(60)

@pipe.task
def after(sleeper):
    return sleeper
'''


def _cadenza(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cadenza", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=60)


def test_cancel_stops_a_live_run_in_another_process(home: Path, tmp_path: Path) -> None:
    (tmp_path / "long.py").write_text(PIPELINE)
    with open(tmp_path / "out.txt", "wb") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "cadenza", "--home", str(home), "run",
             str(tmp_path / "long.py"), "-e", "processes", "-w", "1", "-q"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        run_id = None
        while run_id is None:
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.1)
            listed = json.loads(_cadenza(home, "runs", "--json").stdout or "[]")
            if listed:
                status = json.loads(_cadenza(home, "status", listed[0]["run_id"], "--json").stdout)
                if any(t["state"] == "running" for t in status["tasks"]):
                    run_id = listed[0]["run_id"]
        followed = _cadenza(home, "logs", run_id, "sleeper")
        assert "going to sleep" in followed.stdout
        cancelled = _cadenza(home, "cancel", run_id)
        assert f"run {run_id} cancelled" in cancelled.stdout
        assert runner.wait(timeout=30) == 1
    finally:
        runner.kill()
        runner.wait()
    status = json.loads(_cadenza(home, "status", run_id, "--json").stdout)
    assert status["state"] == "cancelled"
    assert {t["task"]: t["state"] for t in status["tasks"]} == {
        "sleeper": "cancelled", "after": "cancelled"}
    sleeper = next(t for t in status["tasks"] if t["task"] == "sleeper")
    assert sleeper["attempts"][-1]["state"] == "cancelled"
