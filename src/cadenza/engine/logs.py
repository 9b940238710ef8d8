"""Send what a task prints or logs to its attempt's log file, from any thread or process.

``sys.stdout``/``sys.stderr`` are replaced, while runs are active, by routers that write to the
calling thread's attempt log, if it has one, and to the original stream otherwise. Files are
opened on the first write, so a silent task costs no file. Next to ``N.log`` (text) each
attempt has ``N.jsonl``: one JSON object per line, per print or log record.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from cadenza._files import make_folders, open_append
from cadenza.artifacts.base import ArtifactStore
from cadenza.engine.context import TASK_LOGGER
from cadenza.exceptions import CadenzaError
from cadenza.secrets import mask
from cadenza.store.base import TaskStore

_LONGEST_LINE = 1 << 16
_local = threading.local()
_install_lock = threading.Lock()
_installed = 0


def _home_of(log: Path) -> Path:
    for folder in log.parents:
        if folder.name == "logs":
            return folder.parent
    return log.parent


class AttemptLog:
    """The log files of one attempt, opened lazily."""

    def __init__(self, path: str, home: str | Path | None = None) -> None:
        """``home``: the store folder the log lies in, whose permissions it takes (see
        cadenza/_files.py); by default the folder above ``logs/``."""
        self.path = path
        self.home = Path(home) if home is not None else _home_of(Path(path))
        self._text: IO[str] | None = None
        self._json: IO[str] | None = None
        self._partial: dict[str, str] = {}

    def _open(self) -> None:
        path = Path(self.path)
        make_folders(path.parent, self.home)
        text, records = open_append(path, self.home), open_append(path.with_suffix(".jsonl"),
                                                                  self.home)
        self._text = open(text, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._json = open(records, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, text: str, stream: str, level: str = "INFO", logger: str = "") -> None:
        """Append ``text`` to the logs a whole line at a time, so a secret written in pieces
        is masked whole: each complete line is masked, written to the text log, and becomes a
        JSON record; the rest waits for its newline (or for ``close``, or 64 KiB)."""
        if self._text is None:
            self._open()
        assert self._text is not None and self._json is not None
        pending = self._partial.pop(stream, "") + text
        *lines, rest = pending.split("\n")
        if len(rest) > _LONGEST_LINE:  # no newline in sight (a progress bar): write it anyway
            lines.append(rest)
            rest = ""
        if rest:
            self._partial[stream] = rest
        for line in lines:
            line = mask(line)
            self._text.write(line + "\n")
            entry = {"ts": time.time(), "stream": stream, "level": level, "message": line}
            if logger:
                entry["logger"] = logger
            self._json.write(json.dumps(entry) + "\n")

    def flush(self) -> None:
        """Write out the lines still waiting for their newline, and flush the files."""
        if self._text is None:  # nothing was written: no file was opened
            return
        for stream in list(self._partial):
            self.write("\n", stream)
        for handle in (self._text, self._json):
            if handle is not None:
                handle.flush()

    def close(self) -> None:
        if self._text is None:
            return
        self.flush()
        for handle in (self._text, self._json):
            if handle is not None:
                handle.close()

    @property
    def written(self) -> bool:
        return self._text is not None


STORED = "log_stored"
"""The event kind that records an attempt's logs copied into a remote artifact store."""


class StoredLogs:
    """The logs of a run's attempts that ran on other hosts, as their runners copied them
    into the shared artifact store (``log_stored`` events; engine/attempt.py)."""

    def __init__(self, store: TaskStore, artifacts: ArtifactStore, run_id: str) -> None:
        self.store, self.artifacts, self.run_id = store, artifacts, run_id
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._after = 0

    def data(self, task: str, map_index: int, attempt: int) -> bytes | None:
        """The text log of one attempt, or None if none was stored (or it is unreadable)."""
        key = (task, map_index, attempt)
        if key not in self._hashes:  # read the events written since the last look
            for event in self.store.events(self.run_id, self._after):
                self._after = max(self._after, event.id)
                if event.kind == STORED and event.task is not None:
                    found = (event.task, event.map_index, int(event.data["attempt"]))
                    self._hashes[found] = str(event.data["text"])
        digest = self._hashes.get(key)
        if digest is None:
            return None
        try:
            return self.artifacts.get(digest)  # checked against its hash
        except CadenzaError:  # the bucket is away, or the object damaged: no log to show
            return None


def current() -> AttemptLog | None:
    return getattr(_local, "log", None)


def bind(log: AttemptLog | None) -> None:
    _local.log = log


class _Router(io.TextIOBase):
    def __init__(self, fallback: Any, stream: str) -> None:
        self.fallback = fallback
        self._stream = stream

    def write(self, text: str) -> int:
        log = current()
        if log is None:
            return int(self.fallback.write(text))
        if text:
            log.write(text, self._stream)
        return len(text)

    def flush(self) -> None:
        if current() is None:
            self.fallback.flush()

    def isatty(self) -> bool:
        return current() is None and bool(getattr(self.fallback, "isatty", lambda: False)())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


class _Handler(logging.Handler):
    """Writes records from a task's thread to its log; elsewhere, task loggers go to stderr."""

    def __init__(self, always: bool) -> None:
        super().__init__(logging.DEBUG)
        self._always = always
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        log = current()
        text = self.format(record) + "\n"
        if log is not None:
            log.write(text, "log", record.levelname, record.name)
        elif self._always:
            sys.__stderr__.write(text) if sys.__stderr__ else None


_task_handler = _Handler(always=True)
_root_handler = _Handler(always=False)


def install() -> None:
    """Start routing output to attempt logs; nestable, undone by as many ``uninstall`` calls.

    Something else may have replaced ``sys.stdout`` since an outer run installed its router
    (a test runner, a notebook): then the router goes in again, around what is there now."""
    global _installed
    with _install_lock:
        _installed += 1
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, "stdout")
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, "stderr")
        if _installed > 1:
            return
        parent = logging.getLogger(TASK_LOGGER)
        parent.setLevel(logging.INFO)
        parent.propagate = False
        parent.addHandler(_task_handler)
        logging.getLogger().addHandler(_root_handler)


def uninstall() -> None:
    global _installed
    with _install_lock:
        _installed -= 1
        if _installed > 0:
            return
        for name in ("stdout", "stderr"):
            router = getattr(sys, name)
            if isinstance(router, _Router):  # put back what it wraps, unless replaced since
                setattr(sys, name, router.fallback)
        logging.getLogger(TASK_LOGGER).removeHandler(_task_handler)
        logging.getLogger().removeHandler(_root_handler)


def ensure_routing() -> None:
    """Install the routers in this process if nobody has (a worker forked before the run)."""
    if not isinstance(sys.stdout, _Router):
        install()
