"""Where a project's state lives: the metadata store, the artifacts and the logs.

Which store (``.cadenza`` folder) is used is resolved once, at the edge (CLI or
``Pipeline.run``), by one rule:

1. ``home`` given (``--home``, ``home=``), else ``$CADENZA_HOME``: that folder, whoever owns it.
2. Else the nearest ``.cadenza`` folder from the working directory upward. The walk stops
   - at a ``.cadenza`` folder another user owns: it is not used (someone else's state, or one
     left in a shared place such as ``/tmp``), and the command says so;
   - at the project root, the first folder holding ``cadenza.toml``, ``pyproject.toml`` or
     ``.git`` (that folder's own ``.cadenza`` is still found): a project never uses the store
     of a folder around it.
3. Else no store is found. What writes (``cadenza run``, ``backfill``, ``init``, ``ui``) makes
   a new ``.cadenza`` in the working directory; what only reads (``runs``, ``status``,
   ``plan``, ``logs``, ``artifacts``) creates nothing: it says no store was found and exits 2.

The metadata store and the artifacts are in that folder (``cadenza.db``, ``artifacts/``)
unless they are put elsewhere, each by the first of: ``--db`` / ``--artifacts`` (``db=``,
``artifacts=``), ``$CADENZA_DB`` / ``$CADENZA_ARTIFACTS``, ``db = "..."`` / ``artifacts =
"..."`` in the project's cadenza.toml or ``[tool.cadenza]`` of its pyproject.toml. Relative
paths are relative to the working directory, or to the config file's folder when they come
from it. Storage options for the artifacts' filesystem (``endpoint_url`` of an S3-compatible
server) come from ``$CADENZA_ARTIFACTS_OPTIONS`` (JSON), else ``artifacts_options``.
Logs stay in the folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadenza._files import make_home
from cadenza.artifacts.base import ArtifactStore
from cadenza.artifacts.local import LocalArtifactStore
from cadenza.artifacts.open import artifact_store
from cadenza.exceptions import CadenzaError
from cadenza.store.base import MetadataStore
from cadenza.store.open import backend, describe, open_store, sqlite_path

HOME_DIR = ".cadenza"
DB_FILE = "cadenza.db"
PROJECT_MARKERS = ("cadenza.toml", "pyproject.toml", ".git")
"""A folder holding one of these is a project root: the upward search ends there."""


@dataclass(frozen=True)
class Location:
    """Where the store is, and how the search found it."""

    home: Path
    """The ``.cadenza`` folder; it may not exist yet."""
    source: str
    """``given`` (home= or --home), ``env`` ($CADENZA_HOME), ``here`` (the working directory
    holds it), ``above`` (found in a parent folder) or ``none`` (none found: ``home`` is the
    working directory's, to be made)."""
    start: Path
    """The folder the search began in (the working directory)."""
    stop: Path | None = None
    """The last folder the search looked in."""
    why_stop: str = ""
    """Why it stopped there, e.g. "the project root: it holds pyproject.toml"."""
    foreign: Path | None = None
    """A ``.cadenza`` folder the search stopped at because another user owns it."""
    owner: str = ""
    """Who owns ``foreign``."""
    db: str | None = None
    """Where the metadata store is when not ``home/cadenza.db``: a SQLite file's absolute path
    or a PostgreSQL DSN."""
    db_from: str = ""
    """What set ``db``: ``--db``, ``$CADENZA_DB`` or the config file's path."""
    artifacts: str | None = None
    """Where the artifacts are when not ``home/artifacts``: a folder or an fsspec URL."""
    artifacts_from: str = ""
    """What set ``artifacts``, as ``db_from``."""
    artifacts_options: dict[str, Any] = field(default_factory=dict, hash=False)
    """Storage options for the artifacts' filesystem (``endpoint_url``, ...)."""

    @property
    def exists(self) -> bool:
        """Whether there is a store to read: the folder, or the store given elsewhere."""
        if self.db is not None:
            return backend(self.db) == "postgres" or Path(self.db).is_file()
        return self.source != "none" and self.home.is_dir()

    @property
    def where(self) -> str:
        """The metadata store as messages show it (a DSN without its password)."""
        return describe(self.db) if self.db is not None else str(self.home)

    def searched(self) -> str:
        """Where the search looked, e.g. "from /p/src up to /p (the project root: it holds
        .git)"."""
        if self.source in ("given", "env"):
            return f"at {str(self.home)!r}"
        if self.stop is None or self.stop == self.start:
            where = f"in {str(self.start)!r}"
        else:
            where = f"from {str(self.start)!r} up to {str(self.stop)!r}"
        return where + (f" ({self.why_stop})" if self.why_stop else "")

    def skipped(self) -> str:
        """One clause on a store that was not used because another user owns it, or ""."""
        if self.foreign is None:
            return ""
        return (f"{str(self.foreign)!r} belongs to {self.owner}, not to you, so it is not used "
                f"(give --home {self.foreign} to use it anyway)")


class NoStoreError(CadenzaError):
    """A command that only reads found no store; it creates none."""

    def __init__(self, location: Location):
        if location.db is not None:
            text = (f"No cadenza store is at {location.db!r} (from {location.db_from}). Fix "
                    f"the path, or make one there with `cadenza --db {location.db} db "
                    "upgrade`.")
        elif location.source in ("given", "env"):
            how = "--home" if location.source == "given" else "$CADENZA_HOME"
            text = (f"No cadenza store is at {str(location.home)!r} (from {how}). Fix the "
                    f"path, or make one there with `cadenza --home {location.home} init`.")
        else:
            skipped = location.skipped()
            text = (f"No cadenza store was found {location.searched()}"
                    + (f"; {skipped}" if skipped else "")
                    + ". Start one with `cadenza run PIPELINE` or `cadenza init` in the project "
                    "folder, or give --home.")
        super().__init__(text)
        self.location = location


def _owner(path: Path) -> str | None:
    """Who owns ``path`` if it is not the current user (None if it is, or if the platform has
    no user ids)."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return None
    uid = path.stat().st_uid
    if uid == getuid():
        return None
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def locate(home: str | Path | None = None, cwd: str | Path | None = None, *,
           db: str | Path | None = None, artifacts: str | Path | None = None) -> Location:
    """Find the store by the rule in this module's docstring; nothing is created. ``db`` and
    ``artifacts``: the --db and --artifacts given, if any. A location cadenza cannot open is
    an error here, before any work."""
    found = _walk(home, cwd)
    return _places(found, None if db is None else str(db),
                   None if artifacts is None else str(artifacts))


def _walk(home: str | Path | None, cwd: str | Path | None) -> Location:
    start = Path(cwd if cwd is not None else Path.cwd()).resolve()
    if home is not None:
        return Location(Path(home).resolve(), "given", start)
    env = os.environ.get("CADENZA_HOME")
    if env:
        return Location(Path(env).resolve(), "env", start)
    new = start / HOME_DIR
    for folder in (start, *start.parents):
        candidate = folder / HOME_DIR
        if candidate.is_dir():
            owner = _owner(candidate)
            if owner is not None:
                return Location(new, "none", start, folder, "", candidate, owner)
            return Location(candidate, "here" if folder == start else "above", start, folder)
        marker = next((m for m in PROJECT_MARKERS if (folder / m).exists()), None)
        if marker is not None:
            return Location(new, "none", start, folder, f"the project root: it holds {marker}")
    return Location(new, "none", start, Path(start.anchor), "the top of the file system")


def project_root(found: Location) -> Path:
    """The folder whose cadenza.toml or pyproject.toml configures ``found``'s store: the one
    holding the store folder, else the project root the search stopped at, else the working
    directory."""
    if found.source != "none":
        return found.home.parent
    if found.stop is not None and found.foreign is None and found.why_stop.startswith(
            "the project root"):
        return found.stop
    return found.start


def _setting(flag: str | None, env: str, key: str, found: Location
             ) -> tuple[str | None, str, Path]:
    """A location given by ``flag``, else ``$env``, else ``key`` in the project's config:
    (value, what set it, the folder a relative path is relative to)."""
    if flag:
        return flag, f"--{key}", found.start
    if os.environ.get(env):
        return os.environ[env], f"${env}", found.start
    from cadenza._loader import project_setting  # the config is read only when needed

    configured = project_setting(project_root(found), key)
    if configured is None:
        return None, "", found.start
    value, path = configured
    if not isinstance(value, str) or not value:
        raise CadenzaError(f"{str(path)!r}: {key} must be a path or URL in quotes, got "
                           f"{value!r}. Fix the file.")
    return value, str(path), path.parent


def _options(found: Location) -> dict[str, Any]:
    """The artifacts' storage options: $CADENZA_ARTIFACTS_OPTIONS (JSON), else the config's
    ``artifacts_options`` table."""
    text = os.environ.get("CADENZA_ARTIFACTS_OPTIONS", "")
    if text.strip():
        try:
            given: object = json.loads(text)
        except json.JSONDecodeError as exc:
            given = exc
        if not isinstance(given, dict):
            raise CadenzaError(
                f"CADENZA_ARTIFACTS_OPTIONS={text!r} is not a JSON object ({given}); give "
                'one like \'{"endpoint_url": "http://127.0.0.1:9000"}\', or unset it.')
        return given
    from cadenza._loader import project_setting

    configured = project_setting(project_root(found), "artifacts_options")
    if configured is None:
        return {}
    value, path = configured
    if not isinstance(value, dict):
        raise CadenzaError(f"{str(path)!r}: artifacts_options must be a table, like "
                           '[tool.cadenza.artifacts_options] endpoint_url = "http://...", '
                           f"got {value!r}. Fix the file.")
    return value


def _places(found: Location, db_flag: str | None, artifacts_flag: str | None) -> Location:
    """``found`` with the metadata store's and the artifacts' locations resolved."""
    db, db_from, base = _setting(db_flag, "CADENZA_DB", "db", found)
    if db is not None and backend(db) == "sqlite":
        db = str(base / sqlite_path(db))
    artifacts, artifacts_from, base = _setting(artifacts_flag, "CADENZA_ARTIFACTS",
                                               "artifacts", found)
    if artifacts is not None and "://" not in artifacts:
        artifacts = str(base / Path(artifacts).expanduser())
    return dataclasses.replace(found, db=db, db_from=db_from, artifacts=artifacts,
                               artifacts_from=artifacts_from, artifacts_options=_options(found))


def find_home(home: str | Path | None = None) -> Path:
    """The ``.cadenza`` folder :func:`locate` picks (it may not exist yet)."""
    return locate(home).home


@dataclass
class Workspace:
    home: Path
    store: MetadataStore
    artifacts: ArtifactStore
    in_memory: bool = False
    location: Location | None = None
    """How ``open`` found ``home`` (None for a workspace built by hand or in memory)."""

    @property
    def root(self) -> Path:
        """The project directory: relative paths in pipelines are relative to it."""
        return self.home.parent

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def where(self) -> str:
        """The metadata store as messages show it: the folder, or a DSN without password."""
        return self.location.where if self.location is not None else str(self.home)

    @classmethod
    def open(cls, home: str | Path | Location | None = None, *, create: bool = True,
             readonly: bool = False) -> Workspace:
        """The store found from ``home`` (see the module docstring). ``create=False``: raise
        NoStoreError rather than make one. ``readonly``: also write nothing to it (implies
        ``create=False``)."""
        found = home if isinstance(home, Location) else locate(home)
        path = found.home
        if readonly or not create:
            if not found.exists:
                raise NoStoreError(found)
        elif found.foreign == path:  # another user's store is in the working directory
            raise CadenzaError(
                f"{found.skipped()}, and no store of yours can be made beside it; work in "
                "another folder."
            )
        else:
            make_home(path)
        artifacts: ArtifactStore
        if readonly and found.artifacts is None and not path.is_dir():
            # a reader of a store elsewhere (--db) on a host with no folder: no artifacts are
            # here to read, and a reader makes no folder
            from cadenza.artifacts.memory import MemoryArtifactStore

            artifacts = MemoryArtifactStore()
        else:
            artifacts = artifact_store(found.artifacts or path / "artifacts",
                                       **found.artifacts_options)
        if not readonly and isinstance(artifacts, LocalArtifactStore):
            artifacts.clean_temp()
        store = open_store(found.db or path / DB_FILE, readonly=readonly)
        return cls(path, store, artifacts, location=found)

    @classmethod
    def memory(cls, root: str | Path | None = None) -> Workspace:
        """State in memory; logs under a temporary folder (or ``root/.cadenza/logs``)."""
        import tempfile  # here, with the memory stores: a workspace on disk needs none

        from cadenza.artifacts.memory import MemoryArtifactStore
        from cadenza.store.memory import MemoryStore

        base = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="cadenza-"))
        return cls(base.resolve() / HOME_DIR, MemoryStore(), MemoryArtifactStore(), True)

    def holds(self, output: str) -> bool:
        """True if the artifact ``output`` is recorded and its bytes are still there: in a
        file, or kept in the store, where they are small and checked here against the hash
        (a file is checked when read, and set aside if damaged)."""
        return self.holds_all([output])[output]

    def holds_all(self, outputs: Iterable[str]) -> dict[str, bool]:
        """``holds`` for many artifacts, with one read of the store for all of them."""
        wanted = list(dict.fromkeys(outputs))
        stored = self.store.artifact_data(wanted)
        return {
            output: output in stored and (
                self.artifacts.exists(output) if (data := stored[output][1]) is None
                else hashlib.sha256(data).hexdigest() == output
            )
            for output in wanted
        }

    def close(self) -> None:
        self.store.close()
