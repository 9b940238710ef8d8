"""Declared output files as part of "intact": what a reused result's files are on disk now.

A task with ``outputs={"report": "reports/churn.html"}`` is reused (cached, or kept by a resume)
only if each declared file holds the content recorded at its success. A file deleted or
edited since, or overwritten by another run (another interval, other params), is restored
from the artifact store, which keeps every version by content hash; if that copy is gone too,
the task runs again. So a task downstream never reads another run's file as this run's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cadenza.artifacts.base import ArtifactStore
from cadenza.engine.cache import file_hash
from cadenza.exceptions import DamagedArtifactError


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
