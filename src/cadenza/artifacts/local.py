"""Artifacts as files under a folder, ``ab/abcdef...``: written to a temp file, fsynced, renamed.

A write that fails (a full disk) removes its temp file: no artifact is ever left part-written
at its final path."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cadenza._files import file_mode, make_folders
from cadenza._process import alive
from cadenza.artifacts.integrity import check, check_file, same_source, valid_hash
from cadenza.exceptions import DamagedArtifactError, StoreFullError

_CHUNK = 1 << 20


class LocalArtifactStore:
    remote = False
    """Other hosts do not read it: a folder on this host."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / ".tmp"
        make_folders(self._tmp, self.root.parent)
        self._shared = file_mode(self.root.parent) != 0o600
        self._checked: set[tuple[str, int, int]] = set()
        """Files whose content was checked, by (hash, size, mtime): checked once, not per use."""

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    def _file(self, hash: str) -> Path:
        return self.root / valid_hash(hash)[:2] / hash

    def _commit(self, hash: str, write: Callable[[BinaryIO], object]) -> str:
        target = self._file(hash)
        if target.exists():
            return str(target)
        import tempfile  # here: most runs store only small values, which never come here

        # The writer's pid leads the name, so clean_temp can tell a live writer's file from
        # one a killed writer left behind.
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix=f"{os.getpid()}.{hash[:16]}.")
        if self._shared:  # mkstemp makes it 0600: open it to the store's group too
            os.fchmod(fd, file_mode(self.root.parent))
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            make_folders(target.parent, self.root.parent)
            os.replace(tmp, target)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFullError(str(self.root), exc.strerror or "no space") from exc
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power loss
        finally:
            os.close(dir_fd)
        return str(target)

    def put(self, hash: str, data: bytes) -> str:
        return self._commit(hash, lambda out: out.write(data))

    def put_file(self, hash: str, source: Path) -> str:
        def copy(out: BinaryIO) -> None:  # hashed as copied: what is published is checked
            digest = hashlib.sha256()
            with open(source, "rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            same_source(hash, digest.hexdigest(), Path(source), str(self.root))

        return self._commit(hash, copy)

    def get(self, hash: str) -> bytes:
        """The bytes stored under ``hash``, checked against it (DamagedArtifactError)."""
        file = self._file(hash)
        data = file.read_bytes()
        try:
            return check(hash, data, str(file))
        except DamagedArtifactError:
            self._set_aside(file)
            raise

    def _set_aside(self, file: Path) -> None:
        """Move a damaged file to ``.damaged/``: kept for a look, no longer taken for the
        artifact, so the task that made it runs again and the next put stores a good copy."""
        aside = self.root / ".damaged"
        make_folders(aside, self.root.parent)
        with contextlib.suppress(FileNotFoundError):  # another reader set it aside first
            os.replace(file, aside / file.name)

    def exists(self, hash: str) -> bool:
        return self._file(hash).is_file()

    def path(self, hash: str) -> Path | None:
        """The file holding ``hash``, its content checked the first time it is asked for (and
        again if it changed since); None if there is none."""
        file = self._file(hash)
        try:
            stat = file.stat()
        except FileNotFoundError:
            return None
        seen = (hash, stat.st_size, stat.st_mtime_ns)
        if seen not in self._checked:
            try:
                check_file(hash, file)
            except DamagedArtifactError:
                self._set_aside(file)
                raise
            self._checked.add(seen)
        return file

    def delete(self, hash: str) -> None:
        self._file(hash).unlink(missing_ok=True)

    def clean_temp(self) -> int:
        """Remove temp files whose writer is gone (killed mid-write); return how many.

        A file whose writing process still runs is another run's write in progress: kept."""
        count = 0
        for leftover in self._tmp.iterdir():
            pid = leftover.name.partition(".")[0]
            if pid.isdigit() and alive(int(pid)):
                continue
            leftover.unlink(missing_ok=True)
            count += 1
        return count

