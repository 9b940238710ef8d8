"""Metrics: real runs feed them, the real endpoint serves them, Prometheus' parser reads them."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cadenza import CadenzaError, Pipeline, Retry
from cadenza.metrics import Metrics, MetricsHooks
from cadenza.store.base import Event

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return str(response.read().decode())


def metered_pipeline(flaky_calls: list[int]) -> Pipeline:
    pipe = Pipeline("metered")

    @pipe.task
    def source() -> list[int]:
        return [1, 2, 3]

    @pipe.task(map_over="source")
    def double(source: int) -> int:
        return source * 2

    @pipe.task(retries=Retry(2, backoff=0))
    def flaky(source: list[int]) -> int:
        flaky_calls.append(1)
        if len(flaky_calls) == 1:
            raise ConnectionError("first call fails")
        return len(source)

    @pipe.task
    def broken(double: list[int]) -> int:
        raise ValueError("always")

    @pipe.task
    def report(broken: int) -> int:
        return broken

    return pipe


@pytest.fixture
def metrics_after_two_runs(tmp_path: Path) -> Metrics:
    """metered, twice (the second run mostly cached), and fine, once."""
    metrics = Metrics()
    pipe = metered_pipeline([])
    first = pipe.run(home=tmp_path / ".cadenza", hooks=[MetricsHooks(metrics, "metered")])
    assert first.state == "failed" and first.tasks["flaky"].state == "success"
    second = pipe.run(home=tmp_path / ".cadenza", hooks=[metrics.hooks("metered")])
    assert {n: t.state for n, t in second.tasks.items()} == {
        "source": "cached", "double": "cached", "flaky": "cached", "broken": "failed",
        "report": "upstream_failed"}

    fine = Pipeline("fine")
    seen: list[float | None] = []

    @fine.task
    def only() -> int:  # the inline executor runs it in the loop, after its running event
        seen.append(metrics.registry.get_sample_value("cadenza_tasks_running",
                                                      {"pipeline": "fine"}))
        return 1

    assert fine.run(home=tmp_path / ".cadenza", hooks=[metrics.hooks("fine")]).ok
    assert seen == [1.0]
    return metrics


def test_a_scrape_of_the_endpoint_counts_runs_tasks_retries_and_cache_hits(
    metrics_after_two_runs: Metrics,
) -> None:
    metrics = metrics_after_two_runs
    metrics.observe_tick(0.003)
    metrics.hooks("metered").after_event(Event(
        "r", "check_failed", time.time(), "source", -1, {"check": "not_null", "severity": "error"}
    ))
    with metrics.serve(0) as server:
        assert server.port > 0 and server.url.startswith("http://127.0.0.1:")
        s = parse(scrape(server.url))

    assert value(s, "cadenza_runs_total", pipeline="metered", state="failed") == 2
    assert value(s, "cadenza_runs_total", pipeline="fine", state="success") == 1
    assert value(s, "cadenza_runs_total", pipeline="metered", state="success") is None

    def attempts(task: str, state: str) -> float | None:
        return value(s, "cadenza_task_duration_seconds_count", pipeline="metered", task=task,
                     state=state)

    assert attempts("source", "success") == 1
    assert attempts("double", "success") == 3  # its items; never a map_index label
    assert attempts("flaky", "up_for_retry") == 1 and attempts("flaky", "success") == 1
    assert attempts("broken", "failed") == 2
    assert attempts("report", "upstream_failed") is None  # it never ran
    assert attempts("source", "cached") is None  # cached without running: no attempt to time
    assert (value(s, "cadenza_task_duration_seconds_bucket", pipeline="metered", task="double",
                  state="success", le="+Inf") == 3)
    assert not any("map_index" in dict(labels) for _, labels in s)

    assert value(s, "cadenza_task_retries_total", pipeline="metered", task="flaky") == 1
    assert value(s, "cadenza_task_retries_total", pipeline="metered", task="source") == 0
    hits = {task: value(s, "cadenza_cache_hits_total", pipeline="metered", task=task)
            for task in ("source", "double", "flaky", "broken")}
    assert hits == {"source": 1, "double": 3, "flaky": 1, "broken": 0}

    # first run: source, 3 items, flaky twice, broken; second run: broken
    assert value(s, "cadenza_task_queue_wait_seconds_count", pipeline="metered") == 8
    assert value(s, "cadenza_task_queue_wait_seconds_count", pipeline="fine") == 1
    assert value(s, "cadenza_tasks_running", pipeline="metered") == 0
    assert value(s, "cadenza_tasks_running", pipeline="fine") == 0
    assert value(s, "cadenza_check_results_total", pipeline="metered", task="source",
                 check="not_null", result="failed") == 1
    assert value(s, "cadenza_scheduler_tick_seconds_count") == 1
    assert value(s, "cadenza_scheduler_tick_seconds_bucket", le="0.005") == 1
    assert value(s, "cadenza_scheduler_tick_seconds_bucket", le="0.0025") == 0


def test_the_textfile_parses_and_says_what_the_endpoint_says(
    metrics_after_two_runs: Metrics, tmp_path: Path
) -> None:
    path = tmp_path / "textfile" / "cadenza.prom"
    path.parent.mkdir()
    metrics_after_two_runs.write_textfile(path)
    written = parse(path.read_text())
    assert value(written, "cadenza_runs_total", pipeline="metered", state="failed") == 2
    assert value(written, "cadenza_cache_hits_total", pipeline="metered", task="double") == 3
    assert [p.name for p in path.parent.iterdir()] == ["cadenza.prom"]  # no temporary left
    with metrics_after_two_runs.serve(0) as server:
        served = parse(scrape(server.url))
    assert {k: v for k, v in written.items() if not k[0].endswith("_created")} == {
        k: v for k, v in served.items() if not k[0].endswith("_created")}


def test_each_metrics_has_its_own_registry_and_leaves_the_global_one_alone() -> None:
    one, two = Metrics(), Metrics()  # a second set of the same names raises no duplicate error
    one.runs.labels("p", "success").inc()
    assert two.registry.get_sample_value("cadenza_runs_total", {"pipeline": "p",
                                                                 "state": "success"}) is None
    assert b'cadenza_runs_total{pipeline="p",state="success"} 1.0' in one.text()
    names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("cadenza") for name in names)


def test_serving_on_a_port_in_use_says_so_and_a_stopped_server_frees_its_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CadenzaError, match=f"127.0.0.1:{port}.*--metrics-port"):
            Metrics().serve(port)
    server = Metrics().serve(0)
    port = server.port
    server.close()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # free again


def test_a_mapped_task_reused_whole_counts_one_cache_hit(tmp_path: Path) -> None:
    """--only a task after a mapped one: the mapped task's stored output stands in for it."""
    pipe = Pipeline("reuse")

    @pipe.task
    def items() -> list[int]:
        return [1, 2]

    @pipe.task(map_over="items")
    def each(items: int) -> int:
        return items

    @pipe.task
    def total(each: list[int]) -> int:
        return sum(each)

    home = tmp_path / ".cadenza"
    pipe.run(home=home)
    metrics = Metrics()
    assert pipe.run(home=home, only=["total"], force=True, hooks=[metrics.hooks("reuse")]).ok
    hits = metrics.registry.get_sample_value("cadenza_cache_hits_total",
                                             {"pipeline": "reuse", "task": "each"})
    assert hits == 1
