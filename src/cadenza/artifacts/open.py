"""``artifact_store(url)``: the artifact store a location names (``--artifacts`` /
``CADENZA_ARTIFACTS``).

    artifact_store("/srv/cadenza/artifacts")         # LocalArtifactStore: fsync + rename
    artifact_store("file:///srv/cadenza/artifacts")  # the same
    artifact_store("s3://ml-artifacts/cadenza")      # FsspecArtifactStore (cadenza[s3])
    artifact_store("memory://scratch")               # FsspecArtifactStore on fsspec's memory
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cadenza.artifacts.base import ArtifactStore
from cadenza.exceptions import CadenzaError


def artifact_store(url: str | Path, *, cache: str | Path | None = None,
                   **storage_options: Any) -> ArtifactStore:
    """A plain path or a ``file://`` URL gives a LocalArtifactStore; any other URL an
    FsspecArtifactStore, with ``cache`` (its folder for ``path()`` copies) and
    ``storage_options`` passed on. fsspec is imported only in that second case."""
    text = str(url)
    if "://" not in text or text.startswith("file://"):
        if storage_options:
            raise CadenzaError(
                f"Storage options {sorted(storage_options)!r} were given for the local "
                f"artifact folder {text!r}; they apply to fsspec URLs (s3://...) only. Drop "
                "them, or give such a URL."
            )
        from cadenza.artifacts.local import LocalArtifactStore

        return LocalArtifactStore(_local_path(text))
    from cadenza.artifacts.fsspec import FsspecArtifactStore

    return FsspecArtifactStore(text, cache=cache, **storage_options)


def _local_path(text: str) -> Path:
    if not text.startswith("file://"):
        return Path(text).expanduser()
    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise CadenzaError(
            f"The artifact location {text!r} is not a local file URL; write it "
            "file:///absolute/path (three slashes), or give the folder's path."
        )
    return Path(unquote(parts.path))
