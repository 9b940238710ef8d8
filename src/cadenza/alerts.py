"""Alerts: turn the run's events into messages and deliver them without stalling the run.

An ``AlertRouter`` is a hook. For each event worth an alert it builds an ``Alert``, picks the
notifiers whose ``Route`` wants it, drops it if the same alert went out within the dedup window,
and hands each delivery to a few daemon threads. A notifier that raises or hangs is reported to
``on_error``; the run never sees it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cadenza.engine.hooks import Hooks
from cadenza.exceptions import CadenzaError, InvalidOptionError
from cadenza.store.base import Event

if TYPE_CHECKING:  # each is imported where it sends: a run without alerts needs none of them
    from email.message import EmailMessage
    from ssl import SSLContext

log = logging.getLogger("cadenza.alerts")

EVENT_KINDS = frozenset({
    "failed", "up_for_retry", "run_finished", "sla_missed", "check_failed", "check_warned",
    "sensor_error",
})
"""The event kinds a route may ask for."""

DEFAULT_EVENTS = EVENT_KINDS
"""What a route gets when it names no events. ``run_finished`` is in it for failed runs only:
a route hears of successful (or cancelled) runs only if it lists ``run_finished`` itself."""


class NotifierError(CadenzaError):
    """A notifier's peer said no: .notifier, .code (HTTP status or exit code), .detail."""

    def __init__(self, message: str, *, notifier: str, code: int | None = None,
                 detail: str = "") -> None:
        super().__init__(message)
        self.notifier, self.code, self.detail = notifier, code, detail


# -- the alert ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    pipeline: str
    run_id: str
    task: str | None
    ts: float
    data: dict[str, Any]
    summary: str
    """One line for a human: subject, chat message, log line."""
    map_index: int = -1

    @classmethod
    def from_event(cls, event: Event, pipeline: str) -> Alert:
        return cls(event.kind, pipeline, event.run_id, event.task, event.ts, dict(event.data),
                   _summary(event, pipeline), event.map_index)

    @property
    def ok(self) -> bool:
        """Good news (a successful run, a test) rather than trouble."""
        return self.kind == "test" or (self.kind == "run_finished"
                                       and self.data.get("state") == "success")

    @property
    def fingerprint(self) -> tuple[str, str, str, str]:
        """What makes two alerts "the same" for dedup: pipeline, kind, task and the error
        (for checks the check's name, for finished runs their state). Run ids are left out on
        purpose: the same failure in the next scheduled run is still the same failure."""
        detail = next((str(self.data[k]) for k in ("error", "check", "state")
                       if self.data.get(k) is not None), "")
        return self.pipeline, self.kind, self.task or "", detail

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "pipeline": self.pipeline, "run_id": self.run_id,
            "task": self.task, "map_index": self.map_index, "ts": self.ts,
            "time": _iso(self.ts), "summary": self.summary, "data": self.data,
        }


def _summary(event: Event, pipeline: str) -> str:
    d, task = event.data, _task_name(event)
    error = _line(d.get("error"))
    match event.kind:
        case "failed":
            n = d.get("attempt")
            after = f" after {n} attempt{'s' if n != 1 else ''}" if isinstance(n, int) and n else ""
            text = f"{task} failed{after}" + (f": {error}" if error else "")
        case "up_for_retry":
            text = f"{task} failed attempt {d.get('attempt', '?')} and will retry" + (
                f": {error}" if error else "")
        case "run_finished":
            state = d.get("state", "?")
            verb = {"success": "succeeded", "cancelled": "was cancelled"}.get(state, state)
            text = f"run {event.run_id} {verb}"
        case "sla_missed":
            late = ", ".join(repr(t) for t in d.get("waiting_on") or [])
            whose = task if event.task else f"run {event.run_id}"
            text = f"{whose} missed its SLA of {d.get('sla')}s" + (
                f"; still waiting on {late}" if late else "")
        case "check_failed" | "check_warned":
            what = "failed" if event.kind == "check_failed" else "warned"
            text = f"check {d.get('check')!r} on {task} {what}" + (
                f": {_line(d.get('description'))}" if d.get("description") else "")
        case "sensor_error":
            sensor = f" {d['sensor']!r}" if d.get("sensor") else ""
            text = f"sensor{sensor} failed: {error or 'no error given'}"
        case "test":
            text = "test alert from cadenza: if you can read this, alerts reach you"
        case _:
            text = event.kind.replace("_", " ") + (f" ({task})" if event.task else "")
    return f"{pipeline}: {text}"


def _task_name(event: Event) -> str:
    index = f"[{event.map_index}]" if event.map_index >= 0 else ""
    return f"task {event.task!r}{index}" if event.task else "the run"


def _line(value: object, limit: int = 300) -> str:
    """The first line of a message, cut short: a summary must stay one line."""
    text = str(value or "").strip().splitlines()
    first = text[0] if text else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


# -- notifiers ---------------------------------------------------------------------------------

class Notifier(Protocol):
    def notify(self, alert: Alert) -> None: ...


class NullNotifier:
    def notify(self, alert: Alert) -> None:
        pass

    def __repr__(self) -> str:
        return "NullNotifier()"


class MemoryNotifier:
    """Keeps every alert it gets, in order; for tests."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def notify(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def __repr__(self) -> str:
        return f"MemoryNotifier({len(self.alerts)} alerts)"


class LogNotifier:
    """Logs the summary: WARNING for trouble, INFO for good news."""

    def __init__(self, logger_name: str = "cadenza.alerts") -> None:
        self.logger = logging.getLogger(logger_name)

    def notify(self, alert: Alert) -> None:
        self.logger.log(logging.INFO if alert.ok else logging.WARNING, "%s", alert.summary)

    def __repr__(self) -> str:
        return f"LogNotifier({self.logger.name!r})"


class WebhookNotifier:
    """POSTs the alert as JSON; ``text`` carries the summary, so a Slack-compatible incoming
    webhook shows it as is. An answer other than 2xx raises NotifierError.

    ``public_only``: refuse, when sending, a URL whose host resolves to a private, loopback or
    link-local address; use it for a URL that comes from a param or anyone but you."""

    def __init__(self, url: str, headers: dict[str, str] | None = None,
                 timeout: float = 5.0, *, public_only: bool = False) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise InvalidOptionError(
                f"A webhook URL must start with http:// or https://, not {url!r}.",
                option="url", value=url)
        self.url, self.headers, self.timeout = url, dict(headers or {}), timeout
        self.public_only = public_only

    def notify(self, alert: Alert) -> None:
        if self.public_only:
            from cadenza.urls import UrlRefusedError, check_url

            try:
                check_url(self.url, public_only=True)
            except UrlRefusedError as refused:
                raise NotifierError(str(refused), notifier=repr(self)) from None
        body = json.dumps({"text": alert.summary, **alert.to_json()}, default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "cadenza-alerts",
                   **self.headers}
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, text = response.status, response.read(2000)
        except urllib.error.HTTPError as exc:  # urllib raises for 4xx/5xx; keep the body
            with exc:
                status, text = exc.code, exc.read(2000)
        if not 200 <= status < 300:
            detail = text.decode("utf-8", "replace").strip()
            raise NotifierError(f"{self!r} answered HTTP {status}: {_line(detail) or '(empty)'}",
                                notifier=repr(self), code=status, detail=detail)

    def __repr__(self) -> str:
        # Only the host: a webhook's path is often its secret (Slack's is).
        return f"WebhookNotifier('{urllib.parse.urlsplit(self.url).netloc}')"


class EmailNotifier:
    """Sends the alert by SMTP: the summary as subject, the details and the JSON as body.
    ``ssl`` connects over TLS from the start (port 465); ``starttls`` upgrades a plain
    connection (port 587); ``ssl_context`` defaults to the system's trusted CAs."""

    def __init__(self, host: str, port: int = 25, *, sender: str, to: Sequence[str],
                 starttls: bool = False, ssl: bool = False, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0,
                 ssl_context: SSLContext | None = None) -> None:
        if isinstance(to, str) or not to:
            raise InvalidOptionError(
                f"EmailNotifier needs a list of recipients in to=, got {to!r}.",
                option="to", value=to)
        if starttls and ssl:
            raise InvalidOptionError(
                "Choose starttls=True (port 587) or ssl=True (port 465), not both.",
                option="ssl", value=ssl)
        if (username is None) != (password is None):
            raise InvalidOptionError(
                "SMTP login needs both username= and password=; one of them is missing.",
                option="username", value=username)
        self.host, self.port, self.sender, self.to = host, port, sender, list(to)
        self.starttls, self.ssl, self.timeout = starttls, ssl, timeout
        self.username, self._password, self.ssl_context = username, password, ssl_context

    def message(self, alert: Alert) -> EmailMessage:
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["Subject"] = alert.summary
        msg["From"], msg["To"] = self.sender, ", ".join(self.to)
        msg.set_content(_readable(alert))
        return msg

    def notify(self, alert: Alert) -> None:
        import smtplib
        from ssl import create_default_context

        tls = self.ssl_context or (create_default_context() if self.ssl or self.starttls
                                   else None)
        smtp = (smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=tls)
                if self.ssl else smtplib.SMTP(self.host, self.port, timeout=self.timeout))
        with smtp:
            if self.starttls:
                smtp.starttls(context=tls)
            if self.username is not None and self._password is not None:
                smtp.login(self.username, self._password)
            smtp.send_message(self.message(alert))

    def __repr__(self) -> str:
        return f"EmailNotifier('{self.host}:{self.port}', to={self.to!r})"


def _readable(alert: Alert) -> str:
    rows = [("pipeline", alert.pipeline), ("event", alert.kind), ("run", alert.run_id),
            ("task", alert.task), ("time", _iso(alert.ts))]
    rows += [(k, v) for k, v in alert.data.items() if not isinstance(v, dict | list)]
    lines = [alert.summary, ""] + [f"{k + ':':<10} {v}" for k, v in rows if v not in (None, "")]
    return "\n".join([*lines, "", "JSON:", json.dumps(alert.to_json(), indent=2, default=str)])


class CommandNotifier:
    """Runs a program with the alert as JSON on its stdin; it must exit 0."""

    def __init__(self, argv: Sequence[str], timeout: float = 10.0) -> None:
        if isinstance(argv, str) or not argv:
            raise InvalidOptionError(
                f"CommandNotifier takes the program and its arguments as a list, e.g. "
                f"['notify-send', 'cadenza'], not {argv!r}.", option="argv", value=argv)
        self.argv, self.timeout = list(argv), timeout

    def notify(self, alert: Alert) -> None:
        payload = json.dumps(alert.to_json(), default=str).encode()
        import subprocess

        done = subprocess.run(self.argv, input=payload, capture_output=True,
                              timeout=self.timeout, check=False)
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip()[-500:]
            raise NotifierError(
                f"{self!r} exited with code {done.returncode}: {tail or '(no stderr)'}",
                notifier=repr(self), code=done.returncode, detail=tail)

    def __repr__(self) -> str:
        return f"CommandNotifier({self.argv[0]!r})"


# -- routing and delivery ----------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Route:
    """Which alerts go to which notifiers."""

    notifiers: Sequence[Notifier]
    events: Collection[str] | None = None
    """Event kinds to alert on; ``None`` means ``DEFAULT_EVENTS`` (no successful runs)."""
    tasks: Collection[str] | None = None
    """Only these tasks' alerts; ``None`` means every task and the run itself. A route that
    names tasks gets no run-level alerts (run finished, pipeline SLA, sensor errors)."""

    def __post_init__(self) -> None:  # validated when registered, not mid-run
        for name, value in (("events", self.events), ("tasks", self.tasks)):
            if isinstance(value, str):
                raise InvalidOptionError(f"Route {name}= takes a list of names, e.g. "
                                         f"[{value!r}], not a string.", option=name, value=value)
        for notifier in self.notifiers:
            if not callable(getattr(notifier, "notify", None)):
                raise InvalidOptionError(
                    f"{notifier!r} is not a notifier: it has no notify(alert) method.",
                    option="notifiers", value=notifier)
        for kind in self.events or ():
            if kind not in EVENT_KINDS:
                close = difflib.get_close_matches(kind, EVENT_KINDS, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise InvalidOptionError(
                    f"A route cannot alert on {kind!r}: it is not an alerting event. Choose "
                    f"from {', '.join(sorted(EVENT_KINDS))}.{hint}", option="events", value=kind)

    def wants(self, alert: Alert) -> bool:
        if self.tasks is not None and alert.task not in self.tasks:
            return False
        if self.events is not None:
            return alert.kind in self.events
        return alert.kind in DEFAULT_EVENTS and (
            alert.kind != "run_finished" or alert.data.get("state") == "failed")


OnError = Callable[[str, BaseException], None]


class AlertRouter(Hooks):
    """The hook that alerts. ``after_event`` returns at once; each notifier gets a daemon
    thread of its own, lazily, so it hears alerts in order and a slow one delays only itself.
    A delivery taking longer than ``timeout`` seconds is abandoned.

    Dedup: an alert whose ``fingerprint`` was sent within the last ``dedup_window`` seconds is
    dropped. That memory lives in this router object only: a new router (a new process, or a
    new run if the engine makes one per run) starts afresh.

    ``on_error(notifier_repr, exc)`` is called from a delivery thread, not the run loop (and
    from the caller's thread if building the alert itself fails). A hung notifier is reported
    as a ``TimeoutError``; its thread is left behind (daemon) to finish or die with the process.
    """

    def __init__(self, pipeline: str, routes: Sequence[Route], *, dedup_window: float = 600.0,
                 on_error: OnError | None = None, timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for name, value, least in (("dedup_window", dedup_window, 0), ("timeout", timeout, 1e-3)):
            if value < least:
                raise InvalidOptionError(f"AlertRouter {name}= must be at least {least:g} "
                                         f"seconds, not {value!r}.", option=name, value=value)
        self.pipeline, self.routes, self.on_error = pipeline, list(routes), on_error
        self.dedup_window, self.timeout, self.clock = dedup_window, timeout, clock
        self._sent: dict[tuple[str, str, str, str], float] = {}
        self._queues: dict[int, queue.SimpleQueue[Alert | None]] = {}  # by id(notifier)
        self._pending = 0  # handed over and not yet done; guarded by _lock
        self._lock = threading.Condition()
        self._closed = False

    def after_event(self, event: Event) -> None:
        if self._closed or event.kind not in EVENT_KINDS:
            return
        try:
            alert = Alert.from_event(event, self.pipeline)
            targets = {id(n): n for r in self.routes if r.wants(alert) for n in r.notifiers}
            if targets and not self._repeat(alert):
                for notifier in targets.values():
                    self._submit(notifier, alert)
        except Exception as exc:  # a hook must never fail the run it reports on
            self._report(repr(self), exc)

    def _repeat(self, alert: Alert) -> bool:
        with self._lock:  # a scheduler may share one router between its threads
            now, last = self.clock(), self._sent.get(alert.fingerprint)
            if last is not None and now - last < self.dedup_window:
                return True
            self._sent[alert.fingerprint] = now
            if len(self._sent) > 1000:  # forget what the window has let go of
                self._sent = {k: t for k, t in self._sent.items() if now - t < self.dedup_window}
            return False

    def _submit(self, notifier: Notifier, alert: Alert) -> None:
        with self._lock:
            if self._closed:  # closed since after_event looked: its threads may be gone
                return
            self._pending += 1
            jobs = self._queues.get(id(notifier))
            if jobs is None:
                jobs = self._queues[id(notifier)] = queue.SimpleQueue()
                threading.Thread(target=self._work, args=(notifier, jobs), daemon=True,
                                 name=f"cadenza-alerts {notifier!r}").start()
        jobs.put(alert)

    def _work(self, notifier: Notifier, jobs: queue.SimpleQueue[Alert | None]) -> None:
        while (alert := jobs.get()) is not None:
            try:
                error = deliver(notifier, alert, self.timeout)
                if error is not None:
                    self._report(repr(notifier), error)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._lock.notify_all()

    def _report(self, name: str, error: BaseException) -> None:
        try:
            if self.on_error is None:
                log.warning("alert notifier %s failed: %s", name, error)
            else:
                self.on_error(name, error)
        except Exception:
            log.exception("on_error raised while reporting %s's failure", name)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every delivery handed over so far is done (or abandoned); False if
        ``timeout`` seconds pass first."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = 0.0) -> bool:
        """Stop taking alerts and let the threads go once the queue is empty; waits for
        pending deliveries up to ``timeout`` (default: not at all). True if none are left."""
        with self._lock:
            self._closed = True
        done = self.flush(timeout)
        with self._lock:
            for jobs in self._queues.values():
                jobs.put(None)
        return done

    def __repr__(self) -> str:
        return f"AlertRouter({self.pipeline!r}, {len(self.routes)} routes)"

    def __enter__(self) -> AlertRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(self.timeout)


def deliver(notifier: Notifier, alert: Alert, timeout: float) -> BaseException | None:
    """Call ``notifier.notify(alert)`` on a daemon thread; return what it raised, or a
    TimeoutError if it is still going after ``timeout`` seconds (it is then left to run)."""
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            notifier.notify(alert)
            outcome.append(None)
        except BaseException as exc:  # reported, never re-raised: it is not our thread's
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True, name=f"cadenza-notify {notifier!r}")
    thread.start()
    thread.join(timeout)
    if not outcome:
        return TimeoutError(f"{notifier!r} did not deliver the {alert.kind} alert within "
                            f"{timeout:g}s; the delivery was abandoned.")
    return outcome[0]


def send_test(notifiers: Sequence[Notifier], pipeline: str,
              timeout: float = 30.0) -> list[tuple[str, str | None]]:
    """Send a test alert through each notifier, one after another, for
    ``cadenza alerts test PIPELINE``: (notifier, error text or None) for each."""
    event = Event("test", "test", time.time(), data={"message": "cadenza alerts test"})
    alert = Alert.from_event(event, pipeline)
    results: list[tuple[str, str | None]] = []
    for notifier in notifiers:
        error = deliver(notifier, alert, timeout)
        results.append((repr(notifier), None if error is None
                        else f"{type(error).__name__}: {error}"))
    return results
