"""Alerts with real peers on loopback: an HTTP server for webhooks, an SMTP server (aiosmtpd),
a child process for commands; and the router's routing, dedup, and its care for the run."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cadenza import Pipeline, Retry
from cadenza.alerts import (
    Alert,
    AlertRouter,
    CommandNotifier,
    EmailNotifier,
    LogNotifier,
    MemoryNotifier,
    NotifierError,
    NullNotifier,
    Route,
    WebhookNotifier,
    send_test,
)
from cadenza.exceptions import InvalidOptionError
from cadenza.store.base import Event

HOST = "127.0.0.1"
T0 = 1_700_000_000.0


def failed(task: str = "train", error: str = "ValueError: bad rows", attempt: int = 3,
           run_id: str = "r-1") -> Event:
    return Event(run_id, "failed", T0, task, -1, {"attempt": attempt, "error": error})


def finished(state: str, run_id: str = "r-1") -> Event:
    return Event(run_id, "run_finished", T0, None, -1, {"state": state})


# -- peers ------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    received: list[tuple[str, dict[str, str], Any]]
    status = 200
    reply = b"ok"


class _Hook(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.server.reply)))
        self.end_headers()
        self.wfile.write(self.server.reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http() -> Iterator[_Server]:
    server = _Server((HOST, 0), _Hook)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def url(server: _Server, path: str = "/services/T0/B0/secret") -> str:
    return f"http://{HOST}:{server.server_address[1]}{path}"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   auth_data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts"
          and auth_data.password == b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=True means "I answered"


def _free_port() -> int:
    # aiosmtpd's Controller connects to its own port once started, so it cannot take port 0.
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[Callable[..., tuple[Inbox, int]]]:
    from aiosmtpd.controller import Controller

    controllers: list[Controller] = []

    def start(**options: Any) -> tuple[Inbox, int]:
        inbox, port = Inbox(), _free_port()
        controller = Controller(inbox, hostname=HOST, port=port, **options)
        controller.start()
        controllers.append(controller)
        return inbox, port

    yield start
    for controller in controllers:
        controller.stop()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made now: no fixture file to expire."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


class Raising:
    def notify(self, alert: Alert) -> None:
        raise RuntimeError("webhook down")

    def __repr__(self) -> str:
        return "Raising()"


class Hanging:
    """Hangs for 30 s, or until the test lets it go, so no thread outlives the test."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def notify(self, alert: Alert) -> None:
        self.release.wait(30)

    def __repr__(self) -> str:
        return "Hanging()"


class Errors:
    def __init__(self) -> None:
        self.seen: list[tuple[str, BaseException]] = []

    def __call__(self, name: str, error: BaseException) -> None:
        self.seen.append((name, error))


# -- the alert --------------------------------------------------------------------------------

def test_an_alert_sums_up_its_event_in_one_line() -> None:
    alert = Alert.from_event(failed(error="ValueError: bad rows\nTraceback ..."), "churn")
    assert alert.summary == "churn: task 'train' failed after 3 attempts: ValueError: bad rows"
    assert alert.to_json() == {
        "kind": "failed", "pipeline": "churn", "run_id": "r-1", "task": "train",
        "map_index": -1, "ts": T0, "time": "2023-11-14T22:13:20+00:00",
        "summary": alert.summary,
        "data": {"attempt": 3, "error": "ValueError: bad rows\nTraceback ..."},
    }
    summaries = [Alert.from_event(e, "churn").summary for e in [
        Event("r-1", "up_for_retry", T0, "train", 2, {"attempt": 1, "error": "OSError: x"}),
        finished("success"), finished("failed"), finished("cancelled"),
        Event("r-1", "sla_missed", T0, None, -1, {"deadline": T0, "sla": 60,
                                                  "waiting_on": ["train"]}),
        Event("r-1", "check_warned", T0, "clean", -1, {"check": "not_null",
                                                       "description": "3 nulls in 'id'"}),
        Event("", "sensor_error", T0, None, -1, {"sensor": "files", "error": "OSError: gone"}),
    ]]
    assert summaries == [
        "churn: task 'train'[2] failed attempt 1 and will retry: OSError: x",
        "churn: run r-1 succeeded",
        "churn: run r-1 failed",
        "churn: run r-1 was cancelled",
        "churn: run r-1 missed its SLA of 60s; still waiting on 'train'",
        "churn: check 'not_null' on task 'clean' warned: 3 nulls in 'id'",
        "churn: sensor 'files' failed: OSError: gone",
    ]


# -- webhook ----------------------------------------------------------------------------------

def test_webhook_posts_a_slack_compatible_json_payload(http: _Server) -> None:
    notifier = WebhookNotifier(url(http), headers={"Authorization": "Bearer t0ken"})
    alert = Alert.from_event(failed(), "churn")
    notifier.notify(alert)
    [(path, headers, payload)] = http.received
    assert path == "/services/T0/B0/secret"
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer t0ken"
    assert payload["text"] == alert.summary
    assert payload["kind"] == "failed" and payload["task"] == "train"
    assert payload["data"] == {"attempt": 3, "error": "ValueError: bad rows"}
    assert "secret" not in repr(notifier)  # a webhook's path is its credential


def test_webhook_error_answer_raises_with_status_and_body(http: _Server) -> None:
    http.status, http.reply = 500, b"internal trouble"
    with pytest.raises(NotifierError, match="HTTP 500: internal trouble") as info:
        WebhookNotifier(url(http)).notify(Alert.from_event(failed(), "churn"))
    assert info.value.code == 500


def test_webhook_refused_connection_is_an_error_not_a_hang() -> None:
    notifier = WebhookNotifier(f"http://{HOST}:{_free_port()}/", timeout=2)
    with pytest.raises(OSError):
        notifier.notify(Alert.from_event(failed(), "churn"))


def test_a_public_only_webhook_refuses_a_loopback_address_and_sends_nothing(
        http: _Server) -> None:
    notifier = WebhookNotifier(url(http), public_only=True)
    refused = r"resolves to 127\.0\.0\.1, a private, loopback"
    with pytest.raises(NotifierError, match=refused) as info:
        notifier.notify(Alert.from_event(failed(), "churn"))
    assert "secret" not in str(info.value)  # the path, a webhook's credential, is not shown
    assert http.received == []
    WebhookNotifier(url(http)).notify(Alert.from_event(failed(), "churn"))  # off by default
    assert len(http.received) == 1


def test_webhook_needs_an_http_url() -> None:
    with pytest.raises(InvalidOptionError, match="http:// or https://"):
        WebhookNotifier("file:///etc/passwd")


# -- email ------------------------------------------------------------------------------------

def test_email_has_the_summary_as_subject_and_details_as_body(smtp: Any) -> None:
    inbox, port = smtp()
    notifier = EmailNotifier(HOST, port, sender="cadenza@example.com",
                             to=["data@example.com", "oncall@example.com"])
    alert = Alert.from_event(failed(), "churn")
    notifier.notify(alert)
    [(sender, recipients, message)] = inbox.messages
    assert sender == "cadenza@example.com"
    assert recipients == ["data@example.com", "oncall@example.com"]
    assert message["Subject"] == alert.summary
    body = message.get_content()
    assert "pipeline:  churn" in body and "error:     ValueError: bad rows" in body
    assert json.loads(body.split("JSON:", 1)[1]) == alert.to_json()


def test_email_logs_in_when_given_a_user(smtp: Any) -> None:
    inbox, port = smtp(authenticator=_authenticator, auth_require_tls=False)
    good = EmailNotifier(HOST, port, sender="c@example.com", to=["d@example.com"],
                         username="alerts", password="s3cret")
    good.notify(Alert.from_event(failed(), "churn"))
    assert len(inbox.messages) == 1
    bad = EmailNotifier(HOST, port, sender="c@example.com", to=["d@example.com"],
                        username="alerts", password="wrong")
    with pytest.raises(Exception, match="535"):
        bad.notify(Alert.from_event(failed(), "churn"))
    assert len(inbox.messages) == 1
    assert "s3cret" not in repr(good)


def test_email_starttls_then_login_with_a_self_signed_certificate(
        smtp: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    inbox, port = smtp(tls_context=server_tls, require_starttls=True,
                       authenticator=_authenticator)  # AUTH only after STARTTLS (the default)
    trusting = ssl.create_default_context(cafile=str(cert))
    notifier = EmailNotifier(HOST, port, sender="c@example.com", to=["d@example.com"],
                             starttls=True, username="alerts", password="s3cret",
                             ssl_context=trusting)
    notifier.notify(Alert.from_event(failed(), "churn"))
    assert [m["Subject"] for _, _, m in inbox.messages] == [
        "churn: task 'train' failed after 3 attempts: ValueError: bad rows"]
    # The system's CAs do not know this certificate: a default context must refuse it.
    untrusting = EmailNotifier(HOST, port, sender="c@example.com", to=["d@example.com"],
                               starttls=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.notify(Alert.from_event(failed(), "churn"))


def test_email_over_implicit_tls(smtp: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    inbox, port = smtp(ssl_context=server_tls)
    notifier = EmailNotifier(HOST, port, sender="c@example.com", to=["d@example.com"],
                             ssl=True, ssl_context=ssl.create_default_context(cafile=str(cert)))
    notifier.notify(Alert.from_event(failed(), "churn"))
    assert len(inbox.messages) == 1


def test_email_options_are_checked_when_made() -> None:
    with pytest.raises(InvalidOptionError, match="list of recipients"):
        EmailNotifier("smtp.example.com", sender="c@example.com", to="d@example.com")
    with pytest.raises(InvalidOptionError, match="not both"):
        EmailNotifier("smtp.example.com", sender="c@x", to=["d@x"], starttls=True, ssl=True)
    with pytest.raises(InvalidOptionError, match="password"):
        EmailNotifier("smtp.example.com", sender="c@x", to=["d@x"], username="u")


# -- command, log, null, memory ---------------------------------------------------------------

def test_command_gets_the_alert_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    script = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())"
    alert = Alert.from_event(failed(), "churn")
    CommandNotifier([sys.executable, "-c", script, str(out)]).notify(alert)
    assert json.loads(out.read_text()) == alert.to_json()


def test_command_failing_raises_with_exit_code_and_stderr_tail() -> None:
    script = "import sys; sys.stderr.write('x' * 2000 + 'no route to pager'); sys.exit(3)"
    with pytest.raises(NotifierError, match=r"exited with code 3: x+no route to pager$") as info:
        CommandNotifier([sys.executable, "-c", script]).notify(
            Alert.from_event(failed(), "churn"))
    assert info.value.code == 3 and len(info.value.detail) == 500
    with pytest.raises(InvalidOptionError, match="as a list"):
        CommandNotifier("notify-send cadenza")  # type: ignore[arg-type]


def test_log_notifier_warns_on_trouble_and_informs_on_success(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cadenza.alerts")
    LogNotifier().notify(Alert.from_event(failed(), "churn"))
    LogNotifier().notify(Alert.from_event(finished("success"), "churn"))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "churn: task 'train' failed after 3 attempts: ValueError: bad rows"),
        (logging.INFO, "churn: run r-1 succeeded"),
    ]


def test_send_test_reports_each_notifier(http: _Server) -> None:
    memory = MemoryNotifier()
    results = send_test([memory, NullNotifier(), Raising(), WebhookNotifier(url(http))], "churn")
    assert results == [
        (repr(memory), None), ("NullNotifier()", None),
        ("Raising()", "RuntimeError: webhook down"), (f"WebhookNotifier('{HOST}:"
                                                     f"{http.server_address[1]}')", None),
    ]
    assert memory.alerts[0].kind == "test" and memory.alerts[0].ok
    assert http.received[0][2]["text"].startswith("churn: test alert")


# -- routing and dedup ------------------------------------------------------------------------

def test_default_routes_skip_successful_runs_unless_listed() -> None:
    default, explicit = MemoryNotifier(), MemoryNotifier()
    with AlertRouter("churn", [Route([default]), Route([explicit], events=["run_finished"])],
                     dedup_window=0) as router:
        for event in [finished("success"), finished("failed"), finished("cancelled"),
                      Event("r-1", "task_finished", T0, "train"), failed()]:
            router.after_event(event)
        assert router.flush(5)
    assert [(a.kind, a.data.get("state")) for a in default.alerts] == [
        ("run_finished", "failed"), ("failed", None)]
    assert [a.data["state"] for a in explicit.alerts] == ["success", "failed", "cancelled"]


def test_routes_by_task_and_by_event_kind() -> None:
    everything, train, retries = MemoryNotifier(), MemoryNotifier(), MemoryNotifier()
    routes = [Route([everything]), Route([train], tasks=["train"]),
              Route([retries], events=["up_for_retry"])]
    with AlertRouter("churn", routes, dedup_window=0) as router:
        router.after_event(failed("train"))
        router.after_event(failed("load"))
        router.after_event(Event("r-1", "up_for_retry", T0, "load", -1, {"attempt": 1}))
        router.after_event(finished("failed"))
        assert router.flush(5)
    assert [(a.kind, a.task) for a in everything.alerts] == [
        ("failed", "train"), ("failed", "load"), ("up_for_retry", "load"),
        ("run_finished", None)]
    assert [(a.kind, a.task) for a in train.alerts] == [("failed", "train")]
    assert [(a.kind, a.task) for a in retries.alerts] == [("up_for_retry", "load")]


def test_one_notifier_on_two_matching_routes_hears_once() -> None:
    memory = MemoryNotifier()
    with AlertRouter("churn", [Route([memory]), Route([memory], tasks=["train"])]) as router:
        router.after_event(failed())
        assert router.flush(5)
    assert len(memory.alerts) == 1


def test_routes_are_checked_when_made() -> None:
    with pytest.raises(InvalidOptionError, match="Did you mean 'failed'"):
        Route([NullNotifier()], events=["faild"])
    with pytest.raises(InvalidOptionError, match=r"e\.g\. \['train'\]"):
        Route([NullNotifier()], tasks="train")
    with pytest.raises(InvalidOptionError, match="no notify"):
        Route([object()])  # type: ignore[list-item]
    with pytest.raises(InvalidOptionError, match="timeout= must be at least"):
        AlertRouter("churn", [], timeout=0)


def test_the_same_failure_alerts_once_per_dedup_window() -> None:
    now = [0.0]
    memory = MemoryNotifier()
    with AlertRouter("churn", [Route([memory])], dedup_window=600,
                     clock=lambda: now[0]) as router:
        router.after_event(failed(run_id="r-1"))
        router.after_event(failed(run_id="r-2"))  # the same failure in the next run
        router.after_event(failed(error="KeyError: 'id'"))
        router.after_event(failed(task="load"))
        now[0] = 601.0
        router.after_event(failed(run_id="r-3"))
        assert router.flush(5)
    assert [(a.run_id, a.task, a.data["error"]) for a in memory.alerts] == [
        ("r-1", "train", "ValueError: bad rows"), ("r-1", "train", "KeyError: 'id'"),
        ("r-1", "load", "ValueError: bad rows"), ("r-3", "train", "ValueError: bad rows")]


# -- a failing notifier never fails the run ---------------------------------------------------

def test_a_notifier_that_raises_is_reported_and_the_others_still_hear(http: _Server) -> None:
    http.status, http.reply = 500, b"down"
    errors, memory = Errors(), MemoryNotifier()
    router = AlertRouter("churn", [Route([Raising(), WebhookNotifier(url(http)), memory])],
                         on_error=errors)
    router.after_event(failed())  # must not raise
    assert router.flush(5)
    router.close()
    assert len(memory.alerts) == 1
    assert sorted((name, type(e).__name__, str(e)) for name, e in errors.seen) == [
        ("Raising()", "RuntimeError", "webhook down"),
        (f"WebhookNotifier('{HOST}:{http.server_address[1]}')", "NotifierError",
         f"WebhookNotifier('{HOST}:{http.server_address[1]}') answered HTTP 500: down"),
    ]


def test_a_hanging_notifier_is_abandoned_after_the_timeout() -> None:
    errors, hanging, memory = Errors(), Hanging(), MemoryNotifier()
    router = AlertRouter("churn", [Route([hanging, memory])], on_error=errors, timeout=0.5)
    try:
        start = time.monotonic()
        router.after_event(failed())
        assert time.monotonic() - start < 0.2
        assert router.flush(5)
        waited = time.monotonic() - start
        assert 0.4 < waited < 3
        assert len(memory.alerts) == 1
        [(name, error)] = errors.seen
        assert name == "Hanging()" and isinstance(error, TimeoutError)
        assert "within 0.5s" in str(error)
    finally:
        hanging.release.set()
        router.close(5)


def test_a_failing_or_hanging_notifier_does_not_fail_or_stall_a_real_run(
        home: Path, http: _Server) -> None:
    errors, hanging, memory = Errors(), Hanging(), MemoryNotifier()
    router = AlertRouter("flaky", [Route([Raising(), hanging, memory, WebhookNotifier(url(http))],
                                         events=["failed", "up_for_retry", "run_finished"])],
                         on_error=errors, timeout=0.5)
    pipe = Pipeline("flaky")

    @pipe.task(retries=Retry(1, backoff=0), cache=False)
    def train() -> None:
        raise ValueError("bad rows")

    @pipe.task
    def ok() -> int:
        return 1

    try:
        start = time.monotonic()
        result = pipe.run(home=home, hooks=[router])
        assert time.monotonic() - start < 5
        assert result.state == "failed"
        assert router.flush(5)
        assert [(a.kind, a.task) for a in memory.alerts] == [
            ("up_for_retry", "train"), ("failed", "train"), ("run_finished", None)]
        assert [p["kind"] for _, _, p in http.received] == [
            "up_for_retry", "failed", "run_finished"]
        assert sorted({(n, type(e).__name__) for n, e in errors.seen}) == [
            ("Hanging()", "TimeoutError"), ("Raising()", "RuntimeError")]
    finally:
        hanging.release.set()
        router.close(5)


def test_a_closed_router_drops_alerts_quietly() -> None:
    memory = MemoryNotifier()
    router = AlertRouter("churn", [Route([memory])])
    assert router.close(1)
    router.after_event(failed())
    assert router.flush(1) and memory.alerts == []


def test_errors_without_on_error_are_logged_and_a_broken_on_error_is_survived(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(name: str, error: BaseException) -> None:
        raise ValueError("recorder down")

    with AlertRouter("churn", [Route([Raising()])]) as quiet:
        quiet.after_event(failed())
        assert quiet.flush(5)
    with AlertRouter("churn", [Route([Raising()])], on_error=broken) as loud:
        loud.after_event(failed())
        assert loud.flush(5)
    messages = [r.getMessage() for r in caplog.records if r.name == "cadenza.alerts"]
    assert messages == ["alert notifier Raising() failed: webhook down",
                        "on_error raised while reporting Raising()'s failure"]


def test_an_event_that_cannot_become_an_alert_is_reported_not_raised() -> None:
    errors = Errors()
    def broken_clock() -> float:
        raise ValueError("no time")

    with AlertRouter("churn", [Route([MemoryNotifier()])], on_error=errors,
                     clock=broken_clock) as router:
        router.after_event(failed())  # must not raise
    [(name, error)] = errors.seen
    assert name == "AlertRouter('churn', 1 routes)" and str(error) == "no time"
