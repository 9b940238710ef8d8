"""What cadenza creates under a store's folder is private: folders 0700, files 0600, whatever
the umask; plus the group bits the store's folder itself has, so a team shares a store by
opening that one folder to a group (docs/stores.md)."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path


def _group_bits(home: Path) -> int:
    """The store folder's group permissions, and its set-group-id bit (new files take the
    folder's group), which its new folders keep too."""
    try:
        return home.stat().st_mode & (0o070 | stat.S_ISGID)
    except FileNotFoundError:
        return 0


def folder_mode(home: Path) -> int:
    return 0o700 | _group_bits(home)


def file_mode(home: Path) -> int:
    return 0o600 | (_group_bits(home) & 0o060)


def make_folders(path: Path, home: Path) -> None:
    """Create ``path`` and the missing folders above it, each with ``folder_mode(home)``."""
    missing: list[Path] = []
    at = path
    while not at.exists():
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    mode = folder_mode(home)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode)
        except FileExistsError:  # made meanwhile by another writer
            continue
        os.chmod(folder, mode)  # the umask may have taken bits off


def make_home(home: Path) -> None:
    """A new store folder, owner-only (its parents are the user's, made as usual)."""
    if home.exists():
        return
    home.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(home, 0o700)
    except FileExistsError:
        return
    os.chmod(home, 0o700)


def create_file(path: Path, home: Path) -> None:
    """Make ``path`` an empty file with ``file_mode(home)`` if it does not exist, so that what
    opens it next (SQLite, a log) finds it private."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode(home))
    except FileExistsError:
        return
    try:
        os.fchmod(fd, file_mode(home))
    finally:
        os.close(fd)


def open_append(path: Path, home: Path) -> int:
    """A file descriptor appending to ``path``, created private if new."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, file_mode(home))



def write_once(path: Path, make: Callable[[], bytes], mode: int) -> str:
    """The text of ``path`` (stripped), written first with ``make()`` and ``mode`` (whatever
    the umask) if there is no such file. Two processes racing to write it both read the one
    written first: a hard link never replaces a file, where os.replace lets the last win."""
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as out:
                out.write(make())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            except OSError:  # a filesystem without hard links
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()
