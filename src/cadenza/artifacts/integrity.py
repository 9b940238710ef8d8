"""Stored bytes are checked against their hash when read: a damaged artifact is never used.

Every artifact is stored under the SHA-256 of its content, so checking costs one hash of what
is read anyway: about 1 us for a small value, streamed at disk speed for a large file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cadenza.exceptions import CadenzaError, DamagedArtifactError

_CHUNK = 1 << 20
_HEX = frozenset("0123456789abcdef")


class ArtifactStoreError(CadenzaError):
    """The artifact store at ``url`` could not be used for a request (unreachable, refused,
    or handed a file that changed while it was read); nothing was stored."""

    def __init__(self, message: str, *, url: str):
        super().__init__(message)
        self.url = url


def valid_hash(hash: str, *, length: int = 64) -> str:
    """``hash`` if it is ``length`` lowercase hex digits (a SHA-256); else ValueError. A store
    makes paths and keys of it, so nothing else may reach one (``../x``, ``a/b``, a NUL)."""
    if len(hash) != length or not _HEX.issuperset(hash):
        raise ValueError(f"{hash!r} is not an artifact hash ({length} lowercase hex digits)")
    return hash


def same_source(hash: str, found: str, source: Path, where: str) -> None:
    """Raise ArtifactStoreError unless what was read of ``source`` (hashing to ``found``) is
    the artifact ``hash`` it was to be stored as: the file changed, or was cut short, while
    it was read."""
    if found != hash:
        raise ArtifactStoreError(
            f"The file {str(source)!r} changed while it was stored as artifact "
            f"{hash[:16]} (what was read hashes to {found[:16]}); nothing was stored in "
            f"{where!r}. Make sure nothing else writes it (a process the task left "
            "running?) and run the task again.", url=where,
        )


def check(hash: str, data: bytes, where: str = "") -> bytes:
    """``data`` if its SHA-256 is ``hash``; else raise DamagedArtifactError."""
    found = hashlib.sha256(data).hexdigest()
    if found != hash:
        raise DamagedArtifactError(hash, found, where)
    return data


def file_digest(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(hash: str, path: Path) -> Path:
    """``path`` if its content hashes to ``hash``; else raise DamagedArtifactError."""
    found = file_digest(path)
    if found != hash:
        raise DamagedArtifactError(hash, found, str(path))
    return path
