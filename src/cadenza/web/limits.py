"""What the UI accepts from a request: body size, JSON shape, params, page offsets, and how
many failed logins a client may make; each refusal a 4xx that names the limit."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from typing import Any

from cadenza.exceptions import CadenzaError

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body read (413 past it); checked before reading when it is declared."""
MAX_DEPTH = 32
"""The deepest nesting of JSON arrays and objects in a body (422 past it)."""
MAX_PARAM_BYTES = 64 * 1024
"""The largest run parameter, as JSON (422 past it)."""
MAX_OFFSET = 10**9
"""The largest page offset or ``before`` id a list accepts (422 past it)."""
INT_RANGE = (-(2**63), 2**63 - 1)
"""Integers a body may hold: what SQLite and every store keep exactly."""
FAILURES = 10
"""Failed logins a client may make within `WINDOW` seconds before it gets 429."""
WINDOW = 60.0
MAX_CLIENTS = 10_000
"""Clients whose failures are remembered; past it the longest quiet ones are forgotten."""


class InputError(CadenzaError):
    """A request the UI refuses because of what it holds; ``.status`` is 413 or 422."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def too_large(size: int | None = None) -> InputError:
    said = f" ({size} bytes)" if size is not None else ""
    return InputError(
        f"The request body{said} is larger than the limit of {MAX_BODY_BYTES} bytes; "
        "send less (large data belongs in files the pipeline reads, not in params).", 413)


def parse_json(raw: bytes) -> dict[str, Any]:
    """A JSON object from ``raw``, or InputError (422) naming what is wrong and the limit."""
    if len(raw) > MAX_BODY_BYTES:
        raise too_large(len(raw))
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise InputError(f"The JSON body is nested deeper than {MAX_DEPTH} levels; "
                         "flatten it.") from None
    except ValueError as exc:
        raise InputError(f"The request body is not JSON ({exc}); send a JSON object.") from None
    if not isinstance(data, dict):
        raise InputError(
            f"The request body must be a JSON object, not {type(data).__name__}.")
    _check_shape(data)
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_shape(data: Any) -> None:
    """Depth and integer range, walked without recursion."""
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise InputError(f"The JSON body is nested deeper than {MAX_DEPTH} levels "
                                 f"(at {where or 'the top'!r}); flatten it.")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, depth + 1, f"{where}.{k}" if where else str(k)) for k, v in items)
        elif isinstance(value, int) and not INT_RANGE[0] <= value <= INT_RANGE[1]:
            raise InputError(f"The integer at {where!r} is out of range: integers must "
                                 f"lie in [-2**63, 2**63 - 1]; send {str(value)[:20]!r}... as "
                                 "a string if the pipeline expects one.")


def check_params(params: dict[str, Any]) -> None:
    """Refuse a run parameter larger than `MAX_PARAM_BYTES` (as JSON)."""
    for name, value in params.items():
        size = len(json.dumps(value, default=str)) if not isinstance(value, str) \
            else len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_PARAM_BYTES:
            raise InputError(f"Param {name!r} is {size} bytes; the limit is {MAX_PARAM_BYTES}. "
                             "Pass a path or URL to the data instead.")


class Throttle:
    """Failed logins per client: `FAILURES` within `WINDOW` seconds, then `wait` says how long
    until the oldest one leaves the window. A success clears the client's count."""

    def __init__(self, failures: int = FAILURES, window: float = WINDOW) -> None:
        self.failures = failures
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """Seconds ``client`` must wait before its next try (0: it may try now)."""
        with self._lock:
            times = self._seen.get(client)
            if times is None:
                return 0.0
            now = time.monotonic()
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) < self.failures:
                return 0.0
            return max(times[0] + self.window - now, 0.001)

    def failed(self, client: str) -> None:
        with self._lock:
            if client not in self._seen and len(self._seen) >= MAX_CLIENTS:
                self._forget()
            self._seen.setdefault(client, deque(maxlen=self.failures)).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._seen.pop(client, None)

    def _forget(self) -> None:
        """Drop clients with no failure in the window, then, if need be, the quietest half."""
        cutoff = time.monotonic() - self.window
        self._seen = {c: t for c, t in self._seen.items() if t and t[-1] > cutoff}
        if len(self._seen) >= MAX_CLIENTS:
            keep = sorted(self._seen, key=lambda c: self._seen[c][-1])[MAX_CLIENTS // 2:]
            self._seen = {c: self._seen[c] for c in keep}


class Throttled(CadenzaError):
    """A client failed to log in too often; ``.retry_after`` is in whole seconds."""

    def __init__(self, wait: float):
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(f"Too many failed logins from this address; try again in "
                         f"{self.retry_after} s.")
