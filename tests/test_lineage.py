"""Lineage: OpenLineage events that validate against the spec's schema, to a file and to a real
HTTP endpoint, transports that fail without failing the run, and the artifact lineage tree."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from cadenza import CadenzaError, Pipeline
from cadenza.engine.result import RunResult
from cadenza.lineage import (
    FileTransport,
    HttpTransport,
    LineageNode,
    MemoryTransport,
    OpenLineageHooks,
    format_tree,
    lineage_tree,
    run_uuid,
)
from cadenza.store.base import ArtifactRecord, Batch, Event, RunRecord
from cadenza.store.memory import MemoryStore
from cadenza.workspace import Workspace

SCHEMA = json.loads((Path(__file__).parent / "data" / "openlineage-runevent.schema.json")
                    .read_text())
# date-time and uri are checked only where jsonschema's format extra is installed (dev has
# jsonschema[format-nongpl]); without it jsonschema passes them unchecked, so a test says so.
FORMATS = FormatChecker()
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FORMATS)


def test_every_format_the_schema_uses_is_checked() -> None:
    used = {m.group(1) for m in re.finditer(r'"format": "([^"]+)"', json.dumps(SCHEMA))}
    unchecked = sorted(used - set(FORMATS.checkers))
    assert used and not unchecked, (
        f"jsonschema cannot check the formats {unchecked} here, so events would pass "
        "unchecked: install jsonschema[format-nongpl] (pip install -e '.[dev]')")


def demo_pipeline() -> Pipeline:
    pipe = Pipeline("demo")

    @pipe.task
    def raw() -> list[int]:
        return [1, 2, 3]

    @pipe.task
    def clean(raw: list[int]) -> list[int]:
        return [x * 10 for x in raw]

    @pipe.task(map_over="clean")
    def part(clean: int) -> int:
        return clean + 1

    @pipe.task
    def report(clean: list[int], part: list[int]) -> str:
        return f"{sum(clean)}/{sum(part)}"

    @pipe.task
    def bad(raw: list[int]) -> int:
        raise ValueError("the raw data is bad")

    @pipe.task
    def after_bad(bad: int) -> int:
        return bad

    return pipe


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_run(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        runs.setdefault(event["run"]["runId"], []).append(event)
    return runs


def test_the_schema_is_valid_and_rejects_what_the_spec_rejects() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    good = {"eventType": "START", "eventTime": "2024-05-01T12:00:00+00:00",
            "producer": "urn:cadenza:1", "schemaURL": "https://openlineage.io/spec/2-0-2/x",
            "run": {"runId": "3f6b3f0e-5d2b-4b8e-9a51-2c7d0c1e4a90"},
            "job": {"namespace": "n", "name": "j"}}
    VALIDATOR.validate(good)
    for broken in (
        {**good, "eventType": "FINISHED"},
        {**good, "eventTime": "yesterday"},
        {**good, "run": {"runId": "not-a-uuid"}},
        {**good, "job": {"name": "j"}},
        {**good, "producer": "no scheme"},
        {k: v for k, v in good.items() if k != "schemaURL"},
        {**good, "inputs": [{"name": "d"}]},
        {**good, "run": {"runId": good["run"]["runId"], "facets": {"parent": {  # type: ignore[index]
            "_producer": "urn:x", "_schemaURL": "urn:y", "run": {"runId": "x"}}}}},
    ):
        with pytest.raises(ValidationError):
            VALIDATOR.validate(broken)


def test_every_event_validates_and_each_task_run_starts_then_ends(tmp_path: Path) -> None:
    home, path = tmp_path / ".cadenza", tmp_path / "lineage" / "events.jsonl"
    result = demo_pipeline().run(home=home, hooks=[OpenLineageHooks(FileTransport(path),
                                                                    home=home)])
    assert result.state == "failed"
    events = read_events(path)
    for event in events:
        VALIDATOR.validate(event)

    runs = by_run(events)
    pipeline_run = run_uuid(result.run_id)
    assert [e["eventType"] for e in runs[pipeline_run]] == ["START", "FAIL"]
    assert {e["job"]["name"] for e in runs[pipeline_run]} == {"demo"}
    ends = {"demo.raw": "COMPLETE", "demo.clean": "COMPLETE", "demo.part": "COMPLETE",
            "demo.report": "COMPLETE", "demo.bad": "FAIL", "demo.after_bad": "FAIL"}
    for task in ("raw", "clean", "part", "report", "bad", "after_bad"):
        run = runs.pop(run_uuid(result.run_id, task))
        assert [e["eventType"] for e in run] == ["START", ends[f"demo.{task}"]], task
        assert {e["job"]["name"] for e in run} == {f"demo.{task}"}
        assert {e["job"]["namespace"] for e in run} == {"cadenza"}
        parent = run[-1]["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == pipeline_run and parent["job"]["name"] == "demo"
    for index in range(3):  # each mapped item is a run of its task's job, under the task's run
        item = runs.pop(run_uuid(result.run_id, "part", index))
        assert [e["eventType"] for e in item] == ["START", "COMPLETE"]
        assert item[0]["run"]["facets"]["parent"]["run"]["runId"] == run_uuid(result.run_id,
                                                                              "part")
    assert list(runs) == [pipeline_run]

    named = {(e["job"]["name"], e["eventType"]): e for e in events}
    namespace = f"cadenza://{home.resolve().as_posix()}"
    report = named[("demo.report", "COMPLETE")]
    assert report["inputs"] == [{"namespace": namespace, "name": "demo.clean"},
                                {"namespace": namespace, "name": "demo.part"}]
    assert report["outputs"] == [{"namespace": namespace, "name": "demo.report"}]
    assert named[("demo.raw", "START")]["inputs"] == []
    failed = named[("demo.bad", "FAIL")]["run"]["facets"]["errorMessage"]
    assert "the raw data is bad" in failed["message"]
    assert failed["programmingLanguage"] == "PYTHON"
    assert "upstream" in named[("demo.after_bad", "FAIL")]["run"]["facets"]["errorMessage"][
        "message"]
    assert "errorMessage" not in named[("demo.report", "COMPLETE")]["run"]["facets"]
    assert named[("demo", "FAIL")]["run"]["facets"]["errorMessage"]["message"].endswith(
        "tasks that failed or could not run: bad, after_bad.")
    times = [e["eventTime"] for e in events]
    assert times == sorted(times)


def test_a_cached_task_starts_and_completes_and_a_retry_sends_running(tmp_path: Path) -> None:
    pipe = Pipeline("again")
    calls: list[int] = []

    @pipe.task
    def first() -> int:
        return 1

    @pipe.task(retries=1)
    def flaky(first: int) -> int:
        calls.append(first)
        if len(calls) == 1:
            raise ConnectionError("once")
        return 2

    home = tmp_path / ".cadenza"
    transport = MemoryTransport()
    pipe.run(home=home, hooks=[OpenLineageHooks(transport, home=home)])
    assert [e["eventType"] for e in transport.events if e["job"]["name"] == "again.flaky"] == [
        "START", "RUNNING", "COMPLETE"]
    transport.events.clear()
    cached = pipe.run(home=home, hooks=[OpenLineageHooks(transport, home=home)])
    assert {t.state for t in cached.tasks.values()} == {"cached"}
    for event in transport.events:
        VALIDATOR.validate(event)
    assert [(e["job"]["name"], e["eventType"]) for e in transport.events] == [
        ("again", "START"), ("again.first", "START"), ("again.first", "COMPLETE"),
        ("again.flaky", "START"), ("again.flaky", "COMPLETE"), ("again", "COMPLETE")]


# -- a real HTTP endpoint ----------------------------------------------------------------------


class Endpoint(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.status = 200
        self.hang = threading.Event()
        self.hang.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1/lineage"


class Handler(BaseHTTPRequestHandler):
    server: Endpoint

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers["Content-Type"], json.loads(body)))
        self.server.hang.wait(10)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.hang.set()
        server.shutdown()
        server.server_close()
        thread.join()


def run_demo(tmp_path: Path, *hooks: OpenLineageHooks) -> RunResult:
    return demo_pipeline().run(home=tmp_path / ".cadenza", hooks=list(hooks))


def test_an_http_endpoint_receives_the_same_events_as_the_file(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    http = HttpTransport(endpoint.url, timeout=5)
    try:
        run_demo(tmp_path, OpenLineageHooks(FileTransport(path)), OpenLineageHooks(http))
        # after_run flushed: everything was delivered before the run returned
        assert [body for _, body in endpoint.received] == read_events(path)
        assert {kind for kind, _ in endpoint.received} == {"application/json"}
        assert len(endpoint.received) == 2 + 2 * 6 + 2 * 3
        assert http.errors == []
    finally:
        http.close()


def test_failing_transports_are_reported_and_never_fail_the_run(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    refused: list[BaseException] = []
    nobody = HttpTransport(f"http://127.0.0.1:{closed_port}/lineage", timeout=2,
                           on_error=refused.append)
    endpoint.status = 500
    erroring = HttpTransport(endpoint.url, timeout=2, on_error=lambda exc: None)

    class Exploding(MemoryTransport):
        def emit(self, event: dict[str, Any]) -> None:
            raise RuntimeError("boom")

    hook_errors: list[BaseException] = []
    exploding = OpenLineageHooks(Exploding(), on_error=hook_errors.append)
    unwritable = FileTransport(tmp_path / "events.jsonl" / "x")  # a file where a dir must be
    (tmp_path / "events.jsonl").write_text("")
    unwritable.on_error = lambda exc: None
    try:
        result = run_demo(tmp_path, OpenLineageHooks(nobody), OpenLineageHooks(erroring),
                          exploding, OpenLineageHooks(unwritable))
        assert result.tasks["report"].state == "success"  # the run went on as usual
        assert len(refused) == 20 and "Connection refused" in str(refused[0])
        assert len(erroring.errors) == 20 and "answered 500" in erroring.errors[0]
        assert len(hook_errors) == 20 and exploding.errors[0] == "RuntimeError: boom"
        assert len(unwritable.errors) == 20
    finally:
        nobody.close()
        erroring.close()


def test_a_hanging_endpoint_does_not_stall_the_run(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.hang.clear()
    slow = HttpTransport(endpoint.url, timeout=30)
    hooks = OpenLineageHooks(slow, flush_timeout=0.2, on_error=lambda exc: None)
    started = time.monotonic()
    result = run_demo(tmp_path, hooks)
    assert time.monotonic() - started < 5
    assert result.tasks["report"].state == "success"
    assert "were not all sent within 0.2s" in hooks.errors[0]
    endpoint.hang.set()  # the endpoint answers again: what was queued is delivered
    assert slow.flush(10)
    assert len(endpoint.received) == 20
    slow.close()


def test_an_http_transport_needs_an_http_url() -> None:
    with pytest.raises(CadenzaError, match="not an http"):
        HttpTransport("file:///tmp/lineage")
    with pytest.raises(CadenzaError, match="more than 0 seconds"):
        HttpTransport("http://localhost/", timeout=0)


# -- the artifact lineage tree -----------------------------------------------------------------


def three_steps(home: Path) -> tuple[RunResult, dict[str, str]]:
    pipe = Pipeline("steps")

    @pipe.task
    def extract() -> list[int]:
        return [1, 2, 3]

    @pipe.task
    def transform(extract: list[int]) -> list[int]:
        return [x * 2 for x in extract]

    @pipe.task
    def load(transform: list[int]) -> int:
        return sum(transform)

    result = pipe.run(home=home)
    return result, {name: t.output or "" for name, t in result.tasks.items()}


def test_the_lineage_tree_upstream_and_downstream(tmp_path: Path) -> None:
    home = tmp_path / ".cadenza"
    result, h = three_steps(home)
    ws = Workspace.open(home)
    try:
        run = result.run_id
        up = lineage_tree(ws.store, h["load"], "upstream")
        assert format_tree(up) == (
            f"{h['load'][:12]}  steps.load  run {run}\n"
            f"└── {h['transform'][:12]}  steps.transform  run {run}\n"
            f"    └── {h['extract'][:12]}  steps.extract  run {run}"
        )
        down = lineage_tree(ws.store, h["extract"][:10], direction="downstream")
        assert format_tree(down) == (
            f"{h['extract'][:12]}  steps.extract  run {run}\n"
            f"└── {h['transform'][:12]}  steps.transform  run {run}\n"
            f"    └── {h['load'][:12]}  steps.load  run {run}"
        )
        assert format_tree(lineage_tree(ws.store, h["load"], "downstream")) == (
            f"{h['load'][:12]}  steps.load  run {run}")
        as_dict = up.to_dict()
        assert as_dict["task"] == "load" and as_dict["children"][0]["task"] == "transform"
        with pytest.raises(CadenzaError, match="No artifact has the hash 'ffff'"):
            lineage_tree(ws.store, "ffff")
        with pytest.raises(CadenzaError, match="direction must be"):
            lineage_tree(ws.store, h["load"], "sideways")  # type: ignore[arg-type]
    finally:
        ws.close()


def test_a_diamond_is_shown_once_and_a_missing_parent_is_named(tmp_path: Path) -> None:
    pipe = Pipeline("diamond")

    @pipe.task
    def top() -> int:
        return 1

    @pipe.task
    def left(top: int) -> int:
        return top + 1

    @pipe.task
    def right(top: int) -> int:
        return top + 2

    @pipe.task
    def bottom(left: int, right: int) -> int:
        return left * right * 10

    home = tmp_path / ".cadenza"
    result = pipe.run(home=home)
    h = {name: t.output or "" for name, t in result.tasks.items()}
    ws = Workspace.open(home)
    try:
        tree = lineage_tree(ws.store, h["bottom"])
        text = format_tree(tree, short=8)
        first, second = sorted([h["left"], h["right"]])  # parents are kept in hash order
        names = {h["left"]: "left", h["right"]: "right"}
        assert text == (
            f"{h['bottom'][:8]}  diamond.bottom  run {result.run_id}\n"
            f"├── {first[:8]}  diamond.{names[first]}  run {result.run_id}\n"
            f"│   └── {h['top'][:8]}  diamond.top  run {result.run_id}\n"
            f"└── {second[:8]}  diamond.{names[second]}  run {result.run_id}\n"
            f"    └── {h['top'][:8]}  diamond.top  run {result.run_id}  (see above)"
        )
    finally:
        ws.close()
    lonely = LineageNode("abc", "p", "t", "model.pkl", "r1",
                         children=[LineageNode("f00d" * 4, note="missing")])
    assert format_tree(lonely) == (
        "abc  p.t [model.pkl]  run r1\n└── f00df00df00d  (not in this store)")


# -- gates, cancels, schedules, and reporting --------------------------------------------------


def test_a_gate_starts_when_it_waits_and_a_waiting_run_sends_no_end(tmp_path: Path) -> None:
    pipe = Pipeline("gated")

    @pipe.task
    def train() -> float:
        return 0.9

    pipe.gate("promote", after=["train"])

    @pipe.task(after=["promote"])
    def deploy(train: float) -> str:
        return f"deployed {train}"

    home, transport = tmp_path / ".cadenza", MemoryTransport()
    waiting = pipe.run(home=home, hooks=[OpenLineageHooks(transport)])
    assert waiting.state == "waiting"
    assert [(e["job"]["name"], e["eventType"]) for e in transport.events] == [
        ("gated", "START"), ("gated.train", "START"), ("gated.train", "COMPLETE"),
        ("gated.promote", "START")]
    transport.events.clear()
    resumed = pipe.run(home=home, resume=waiting.run_id, approve=["promote"],
                       hooks=[OpenLineageHooks(transport)])
    assert resumed.ok
    for event in transport.events:
        VALIDATOR.validate(event)
    assert [(e["job"]["name"], e["eventType"]) for e in transport.events] == [
        ("gated", "START"), ("gated.promote", "START"), ("gated.promote", "COMPLETE"),
        ("gated.deploy", "START"), ("gated.deploy", "COMPLETE"), ("gated", "COMPLETE")]
    assert {e["run"]["runId"] for e in transport.events if e["job"]["name"] == "gated"} == {
        run_uuid(waiting.run_id)}  # a resume continues the same OpenLineage run


def test_a_cancelled_run_aborts_and_items_can_be_left_out(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    transport = MemoryTransport()
    result = demo_pipeline().run(home=tmp_path / ".cadenza", cancel=cancel,
                                 hooks=[OpenLineageHooks(transport)])
    assert result.state == "cancelled"
    assert {e["eventType"] for e in transport.events} == {"START", "ABORT"}
    assert len(transport.events) == 2 + 2 * 6  # every task, and the run
    transport.events.clear()
    demo_pipeline().run(home=tmp_path / ".cadenza", hooks=[OpenLineageHooks(transport,
                                                                            items=False)])
    assert len(transport.events) == 2 + 2 * 6  # without the mapped task's three items


def test_a_scheduled_run_carries_its_nominal_time(tmp_path: Path) -> None:
    pipe = demo_pipeline()
    transport = MemoryTransport()
    hooks = OpenLineageHooks(transport, dataset_namespace="s3://bucket")
    run = RunRecord("demo-1", "demo", "running", {}, 0.0,
                    interval_start="2024-05-01T00:00:00+00:00",
                    interval_end="2024-05-02T00:00:00+00:00")
    hooks.before_run(run, pipe.graph())
    hooks.after_event(Event("demo-1", "running", 1.0, "raw"))
    hooks.after_event(Event("demo-1", "skipped", 2.0, "raw"))  # ran, then skipped itself
    hooks.after_event(Event("demo-1", "skipped", 2.0, "clean"))  # never ran: nothing to say
    hooks.after_event(Event("demo-1", "run_finished", 3.0, None, -1, {"state": "success"}))
    for event in transport.events:
        VALIDATOR.validate(event)
    assert [(e["job"]["name"], e["eventType"]) for e in transport.events] == [
        ("demo", "START"), ("demo.raw", "START"), ("demo.raw", "COMPLETE"), ("demo", "COMPLETE")]
    nominal = transport.events[0]["run"]["facets"]["nominalTime"]
    assert nominal["nominalStartTime"].startswith("2024-05-01T00:00:00")
    assert nominal["nominalEndTime"].startswith("2024-05-02T00:00:00")
    assert transport.events[1]["outputs"] == [{"namespace": "s3://bucket", "name": "demo.raw"}]


def test_errors_go_to_the_log_without_on_error_and_a_closed_transport_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = HttpTransport("http://127.0.0.1:9/")
    transport.close()
    with caplog.at_level("WARNING", logger="cadenza.lineage"):
        transport.emit({"eventType": "START"})
        transport.emit({"bad": {1, 2}})  # not JSON
    assert "the transport is closed" in transport.errors[0]
    assert transport.errors[1].startswith("TypeError")
    assert len(caplog.records) == 2

    def broken(exc: BaseException) -> None:
        raise RuntimeError("the callback broke too")

    hooks = OpenLineageHooks(MemoryTransport(), on_error=broken)
    with caplog.at_level("ERROR", logger="cadenza.lineage"):
        hooks.before_run(None, None)  # type: ignore[arg-type]
    assert "the on_error callback raised" in caplog.records[-1].message
    assert hooks.errors[0].startswith("AttributeError")


def test_tree_prefixes_missing_parents_and_depth() -> None:
    store = MemoryStore()

    def art(digest: str, task: str, at: float, *parents: str) -> ArtifactRecord:
        return ArtifactRecord(digest, "json", 1, "p", task, "r", at, parents=parents)

    store.apply(Batch(artifacts=[
        art("aa11", "a", 1), art("aa22", "b", 2, "aa11", "gone"), art("bb33", "c", 3, "aa22"),
    ]))
    with pytest.raises(CadenzaError, match="2 artifacts have hashes starting 'aa'"):
        lineage_tree(store, "aa")
    assert format_tree(lineage_tree(store, "bb")) == (
        "bb33  p.c  run r\n└── aa22  p.b  run r\n    ├── aa11  p.a  run r\n"
        "    └── gone  (not in this store)")
    assert format_tree(lineage_tree(store, "aa1", "downstream", max_depth=1)) == (
        "aa11  p.a  run r\n└── aa22  p.b  run r  (deeper lineage cut)")
