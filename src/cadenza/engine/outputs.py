"""Declared output files as part of "intact": what a reused result's files are on disk now.

A task with ``outputs={"report": "reports/churn.html"}`` is reused (cached, or kept by a resume)
only if each declared file holds the content recorded at its success. A file deleted or
edited since, or overwritten by another run (another interval, other params), is restored
from the artifact store, which keeps every version by content hash; if that copy is gone too,
the task runs again. So a task downstream never reads another run's file as this run's.

Runs that may overlap in time (a parallel backfill, ``max_active_runs`` above 1) should not
share a path: a declared path may name the run's fields, ``{interval_start}``,
``{interval_end}``, ``{logical_date}`` (with a strftime format after a colon:
``{interval_start:%Y-%m-%d}``), ``{run_id}`` and ``{params[NAME]}``. A run with no data
interval (a manual one) formats its dates as ``manual``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import string
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any

from cadenza.artifacts.base import ArtifactStore
from cadenza.engine.cache import file_hash
from cadenza.exceptions import CadenzaError, DamagedArtifactError

FIELDS = ("interval_start", "interval_end", "logical_date", "run_id", "params")


class _Moment:
    """A run's date in a path: ``2026-01-01`` at midnight, ``2026-01-01T0010`` otherwise, a
    strftime format if one is given, and ``manual`` for a run without a data interval."""

    def __init__(self, iso: str | None) -> None:
        self.when = datetime.fromisoformat(iso) if iso else None

    def __format__(self, spec: str) -> str:
        if self.when is None:
            return "manual"
        if spec:
            return self.when.strftime(spec)
        if self.when.time() == dt_time(0):
            return self.when.strftime("%Y-%m-%d")
        return self.when.strftime("%Y-%m-%dT%H%M")


def fields(run_id: str, dates: tuple[str | None, str | None, str | None],
           params: Mapping[str, Any]) -> dict[str, Any]:
    """What a declared path may name, for one run: dates are (logical, start, end)."""
    return {"run_id": run_id, "logical_date": _Moment(dates[0]),
            "interval_start": _Moment(dates[1]), "interval_end": _Moment(dates[2]),
            "params": dict(params)}


def check_template(path: str) -> str | None:
    """Why ``path`` cannot be a declared output's path template, or None if it can."""
    try:
        for _, name, _, _ in string.Formatter().parse(path):
            if name is None:
                continue
            head = name.split("[", 1)[0].split(".", 1)[0]
            if head not in FIELDS:
                return (f"it names {{{name}}}; a path may name " +
                        ", ".join(f"{{{f}}}" for f in FIELDS[:-1]) + " and {params[NAME]}")
    except ValueError as error:
        return f"it is not a valid template ({error}); write a literal brace as {{{{ or }}}}"
    return None


def resolve(declared: Mapping[str, str], values: Mapping[str, Any], root: Path
            ) -> dict[str, str]:
    """Each declared path with the run's fields filled in, checked to stay under ``root``."""
    if not any("{" in path for path in declared.values()):
        return dict(declared)
    resolved: dict[str, str] = {}
    top = root.resolve()
    for name, template in declared.items():
        try:
            path = template.format_map(values)
        except (KeyError, IndexError, AttributeError, TypeError, ValueError) as error:
            raise CadenzaError(
                f"Declared output {name!r} at {template!r} cannot be filled in for run "
                f"{values.get('run_id')!r}: {error!r}. Name only a param the run has."
            ) from None
        if not (top / path).resolve().is_relative_to(top):
            raise CadenzaError(
                f"Declared output {name!r} at {template!r} becomes {path!r}, outside the "
                f"project folder {str(top)!r}; keep params that name paths free of '..'."
            )
        resolved[name] = path
    return resolved


@dataclass(frozen=True)
class Files:
    """The verdict on a result's declared files."""

    usable: bool
    """True if the artifact store holds every file, and each is on disk as recorded or can be
    restored from there."""
    restore: tuple[tuple[Path, str], ...] = ()
    """(path, content hash) to copy back before the result is reused."""
    reasons: tuple[str, ...] = ()
    """One phrase per file that is not as recorded: what `plan` says."""


INTACT = Files(True)


def check(root: Path, declared: Mapping[str, str], recorded: Mapping[str, str],
          artifacts: ArtifactStore) -> Files:
    """Compare each declared file under ``root`` with the hash ``recorded`` for it."""
    if not recorded:
        return INTACT
    restore: list[tuple[Path, str]] = []
    reasons: list[str] = []
    usable = True
    for name, digest in recorded.items():
        relative = declared.get(name)
        if relative is None:  # no longer declared: the code changed, and so did the key
            continue
        if not artifacts.exists(digest):  # the version history must hold every output
            usable = False
            reasons.append(f"output {name!r}: its stored copy is gone")
            continue
        path = root / relative
        try:
            if file_hash(path) == digest:
                continue
            state = "changed on disk"
        except FileNotFoundError:
            state = "missing"
        restore.append((path, digest))
        reasons.append(f"output {name!r} {state}, will be restored")
    if not reasons:
        return INTACT
    return Files(usable, tuple(restore), tuple(reasons))


def restore(artifacts: ArtifactStore, path: Path, digest: str) -> bool:
    """Put the stored content ``digest`` back at ``path``, atomically (a reader sees the old
    file or the whole new one); False if the stored copy turned out damaged or gone."""
    try:
        source = artifacts.path(digest)
        data = None if source is not None else artifacts.get(digest)
    except (DamagedArtifactError, FileNotFoundError, KeyError):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".restore")
    try:
        with os.fdopen(fd, "wb") as out:
            if source is not None:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            else:
                assert data is not None
                out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True
