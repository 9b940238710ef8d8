"""Where a project's state lives: the metadata store, the artifacts and the logs.

Resolved once, at the edge (CLI or ``Pipeline.run``): an explicit ``home``, else
``$CADENZA_HOME``, else the nearest ``.cadenza`` folder above the working directory, else a new
``.cadenza`` in the working directory.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cadenza.artifacts.base import ArtifactStore
from cadenza.artifacts.local import LocalArtifactStore
from cadenza.artifacts.memory import MemoryArtifactStore
from cadenza.store.base import MetadataStore
from cadenza.store.memory import MemoryStore
from cadenza.store.sqlite import SqliteStore

HOME_DIR = ".cadenza"


def find_home(home: str | Path | None = None) -> Path:
    if home is not None:
        return Path(home).resolve()
    env = os.environ.get("CADENZA_HOME")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / HOME_DIR).is_dir():
            return folder / HOME_DIR
    return here / HOME_DIR


@dataclass
class Workspace:
    home: Path
    store: MetadataStore
    artifacts: ArtifactStore
    in_memory: bool = False

    @property
    def root(self) -> Path:
        """The project directory: relative paths in pipelines are relative to it."""
        return self.home.parent

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @classmethod
    def open(cls, home: str | Path | None = None) -> Workspace:
        path = find_home(home)
        path.mkdir(parents=True, exist_ok=True)
        artifacts = LocalArtifactStore(path / "artifacts")
        artifacts.clean_temp()
        return cls(path, SqliteStore(path / "cadenza.db"), artifacts)

    @classmethod
    def memory(cls, root: str | Path | None = None) -> Workspace:
        """State in memory; logs under a temporary folder (or ``root/.cadenza/logs``)."""
        base = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="cadenza-"))
        return cls(base.resolve() / HOME_DIR, MemoryStore(), MemoryArtifactStore(), True)

    def holds(self, output: str) -> bool:
        """True if the artifact ``output`` is recorded and its bytes are still there."""
        record = self.store.artifact(output)
        return record is not None and (record.data is not None or self.artifacts.exists(output))

    def close(self) -> None:
        self.store.close()
