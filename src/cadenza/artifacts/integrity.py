"""Stored bytes are checked against their hash when read: a damaged artifact is never used.

Every artifact is stored under the SHA-256 of its content, so checking costs one hash of what
is read anyway: about 1 us for a small value, streamed at disk speed for a large file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cadenza.exceptions import DamagedArtifactError

_CHUNK = 1 << 20


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
