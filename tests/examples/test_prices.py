"""examples/prices end to end: runs, promotion, validation, HTTP ingest, serving, rollback."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sklearn  # noqa: F401  (the tasks import it; without it fail here, not mid-run)
from click.testing import CliRunner

with warnings.catch_warnings():
    # starlette now asks for `httpx2` in its TestClient; the examples extra installs httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from cadenza.artifacts import active, rollback, versions
from cadenza.cli import main as cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prices"
PRICES = [100 + 0.1 * i + (3 if i % 7 in (2, 3) else 0) for i in range(40)]


def _import(name: str, file: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> Iterator[tuple[ModuleType, ModuleType]]:
    """The pipeline and server modules, imported the way `cadenza run` and uvicorn do."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield _import("prices_example_pipeline", "pipeline.py"), _import("prices_serve", "serve.py")
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.fixture
def run(example: tuple[ModuleType, ModuleType], home: Path) -> Iterator[Any]:
    """run(**params): one run of the pipeline into ``home``; its result."""
    results: list[Any] = []

    def run(**params: Any) -> Any:
        results.append(example[0].pipe.run(params, home=home))
        return results[-1]

    yield run
    for result in results:
        result.workspace.close()


def test_two_runs_promote_and_the_server_follows_a_rollback(
    example: tuple[ModuleType, ModuleType], home: Path, run: Any
) -> None:
    first = run(seed=1)
    second = run(seed=2)
    assert first.ok and second.ok
    v1, v2 = (r.output("evaluate_report")["version"] for r in (first, second))
    assert v1 != v2
    assert first.output("evaluate_report")["promoted"] and second.output("evaluate_report")[
        "promoted"]
    assert {r.hash for r in versions("prices", "train_or_score", home=home)} == {v1, v2}
    assert active("prices", "train_or_score", home=home) == v2
    report = (home.parent / "reports" / "prices_report.txt").read_text()
    assert f"PROMOTED: {v2[:12]}" in report and "seasonal naive" in report
    assert (home.parent / "reports" / "prices.png").read_bytes()[:4] == b"\x89PNG"

    client = TestClient(example[1].create_app(home, refresh=0))
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["model_version"] == v2
    new = client.post("/predict", json={"prices": PRICES, "horizon": 5}).json()
    assert new["model_version"] == v2 and len(new["forecast"]) == 5
    assert client.post("/predict", json={"horizon": 3}).json()["from"] == "2025-01-01"

    assert rollback("prices", "train_or_score", home=home) == v1
    old = client.post("/predict", json={"prices": PRICES, "horizon": 5}).json()
    assert old["model_version"] == v1 and client.get("/health").json()["model_version"] == v1
    assert old["forecast"] != new["forecast"]

    too_short = client.post("/predict", json={"prices": PRICES[:5]})
    assert too_short.status_code == 422 and "at least 28" in too_short.json()["detail"]
    assert client.post("/predict", json={"horizon": 0}).status_code == 422


def test_a_model_worse_than_the_baseline_is_kept_but_not_promoted(
    example: tuple[ModuleType, ModuleType], home: Path, run: Any
) -> None:
    good = run(seed=3).output("evaluate_report")
    bad_run = run(seed=3, model="mean")
    bad = bad_run.output("evaluate_report")
    assert bad_run.ok and good["promoted"] and not bad["promoted"]
    assert bad["mae"]["model"] > 1.1 * bad["mae"][bad["baseline"]]
    assert active("prices", "train_or_score", home=home) == good["version"]
    assert bad["version"] in {r.hash for r in versions("prices", "train_or_score", home=home)}
    assert "NOT PROMOTED" in (home.parent / "reports" / "prices_report.txt").read_text()
    # A deliberately loose limit lets the same model through: the rule, not the model, decides.
    loose = run(seed=3, model="mean", max_degradation=10.0)
    assert loose.output("evaluate_report")["promoted"]
    assert active("prices", "train_or_score", home=home) == bad["version"]


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving ``folder``; its base URL."""
    handler = functools.partial(QuietFiles, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_broken_batch_fails_validation_with_a_schema_diff(
    example: tuple[ModuleType, ModuleType], home: Path, run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRICES_SOURCE_HOSTS", "127.0.0.1")
    with serving(EXAMPLE) as base:
        result = run(source_url=f"{base}/broken_prices.csv")
    assert result.state == "failed"
    validate = result.tasks["validate"]
    assert validate.state == "failed" and len(validate.attempts) == 1  # fails fast, no retry
    assert "schema differs: missing price (float64); extra close (float64)" in validate.error
    assert result.tasks["train_or_score"].state == "upstream_failed"
    assert active("prices", "train_or_score", home=home) is None


class FlakyPrices(BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` requests, then serves prices as JSON."""

    body = b""
    failures = 2
    seen: list[float] = []

    def do_GET(self) -> None:
        self.seen.append(time.monotonic())
        if len(self.seen) <= self.failures:
            self.send_error(503, "warming up")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_source_url_reads_only_listed_hosts_over_http(
    example: tuple[ModuleType, ModuleType], home: Path, run: Any,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """A param is anyone's input: it must not make the pipeline read a local file or an
    internal service, nor show what it found there."""
    secret_file = tmp_path / "hostname"
    secret_file.write_text("internal-box-42\n")
    monkeypatch.setenv("PRICES_SOURCE_HOSTS", "prices.example.com")
    with serving(tmp_path) as base:
        for url in (secret_file.as_uri(), f"{base}/hostname", "gopher://127.0.0.1/x"):
            result = run(source_url=url)
            generate = result.tasks["generate"]
            assert generate.state == "failed" and len(generate.attempts) == 1, url
            assert "is refused" in (generate.error or "")
            assert "internal-box-42" not in (generate.error or "")


def test_http_ingest_retries_with_exponential_backoff(
    example: tuple[ModuleType, ModuleType], home: Path, run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRICES_SOURCE_HOSTS", "127.0.0.1")
    frame = example[0].synthetic_prices(seed=5, days=200, noise=1.0)
    rows = [{"date": str(d.date()), "price": None if p != p else p}
            for d, p in zip(frame["date"], frame["price"], strict=True)]
    FlakyPrices.body = json.dumps({"prices": rows}).encode()
    FlakyPrices.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyPrices)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/prices"
        result = run(source_url=url, holdout=30)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result.ok, result.tasks["generate"].error
    assert [a.state for a in result.tasks["generate"].attempts][-1] == "success"
    assert len(result.tasks["generate"].attempts) == 3
    gaps = [b - a for a, b in zip(FlakyPrices.seen, FlakyPrices.seen[1:], strict=False)]
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95  # backoff 0.5 s, then 1 s
    assert len(result.output("generate")) == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, data: bytes | None = None) -> dict[str, Any]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


def test_the_readme_runbook_with_a_real_uvicorn(tmp_path: Path) -> None:
    """The README's commands: run twice, list versions, serve, roll back, see the answer
    change, tag the newer version back."""
    home = tmp_path / ".cadenza"
    runner = CliRunner()

    def cadenza(*args: str) -> str:
        out = runner.invoke(cli, ["--home", str(home), *args])
        assert out.exit_code == 0, out.output
        return out.output

    cadenza("run", str(EXAMPLE), "--param", "seed=1")
    cadenza("run", str(EXAMPLE), "--param", "seed=2")
    listed = json.loads(cadenza("artifacts", "ls", "--pipeline", "prices", "--task",
                                "train_or_score", "--json"))
    assert len(listed) == 2 and listed[0]["aliases"] == ["active"]
    newest, older = listed[0]["hash"], listed[1]["hash"]
    broken = runner.invoke(cli, ["--home", str(home), "run", str(EXAMPLE), "--param",
                                 f"source_url={(EXAMPLE / 'broken_prices.csv').as_uri()}"])
    assert broken.exit_code != 0

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "serve:create_app", "--factory", "--port", str(port)],
        cwd=EXAMPLE, env={**os.environ, "CADENZA_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"horizon": 7}).encode()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _get(f"{base}/health")["model_version"] == newest
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        before = _get(f"{base}/predict", body)
        assert before["model_version"] == newest
        assert "rolled back to " + older[:12] in cadenza("artifacts", "rollback", "prices",
                                                         "train_or_score")
        deadline = time.monotonic() + 5  # the server looks the version up at most every 1 s
        while (after := _get(f"{base}/predict", body))["model_version"] != older:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert after["forecast"] != before["forecast"]
        cadenza("artifacts", "tag", "prices", "train_or_score", newest[:12])
        assert active("prices", "train_or_score", home=home) == newest
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert b"Traceback" not in err, err.decode()
