"""Metrics, lineage and the lineage command, wired into `cadenza run` and the scheduler."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from cadenza import Pipeline
from cadenza.cli import main
from cadenza.metrics import Metrics
from cadenza.schedule.scheduler import Entry, Scheduler

PIPE = '''
from cadenza import Pipeline
pipe = Pipeline("observed")

@pipe.task
def raw() -> list[int]:
    return [1, 2, 3]

@pipe.task
def total(raw: list[int]) -> int:
    return sum(raw)
'''


def test_run_writes_metrics_and_lineage_and_the_tree_prints(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(PIPE)
    home = tmp_path / ".cadenza"
    runner = CliRunner()
    result = runner.invoke(main, [
        "--home", str(home), "run", str(tmp_path / "p.py"), "--json",
        "--metrics-file", str(tmp_path / "run.prom"), "--lineage-file", str(tmp_path / "ol.jsonl"),
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    families = {f.name: f for f in text_string_to_metric_families(
        (tmp_path / "run.prom").read_text())}
    runs = [s for s in families["cadenza_runs"].samples if s.name == "cadenza_runs_total"]
    assert [(s.labels["state"], s.value) for s in runs] == [("success", 1.0)]
    events = [json.loads(line) for line in (tmp_path / "ol.jsonl").read_text().splitlines()]
    assert {e["eventType"] for e in events} == {"START", "COMPLETE"}
    assert {e["job"]["name"] for e in events} >= {"observed.raw", "observed.total"}
    output = json.loads(result.output)["tasks"]["total"]["output"]
    tree = runner.invoke(main, ["--home", str(home), "lineage", output[:12]],
                         catch_exceptions=False).output
    assert "total" in tree and "raw" in tree


def test_the_scheduler_times_its_ticks(tmp_path: Path) -> None:
    pipe = Pipeline("timed", every="1h", start=datetime(2026, 11, 1, tzinfo=UTC), catchup=True)

    @pipe.task
    def t() -> None: ...

    metrics = Metrics()
    stop = threading.Event()
    ticks: list[int] = []

    def on_tick(created: list[str], started: list[str]) -> None:
        ticks.append(1)
        if len(ticks) == 2:
            stop.set()

    clock = datetime(2026, 11, 1, 3, tzinfo=UTC).timestamp
    sched = Scheduler([Entry(pipe, "x")], tmp_path / ".cadenza", metrics=metrics, clock=clock)
    sched.serve(stop, every=0.01, grace=10, on_tick=on_tick)
    text = metrics.text().decode()
    assert 'cadenza_scheduler_tick_seconds_count 2.0' in text
    assert 'cadenza_runs_total{pipeline="timed",state="success"}' in text
