"""Cache keys: a task's code, the params it uses, its inputs' content hashes, its input files,
and its data interval when it asks for one. Equal key and intact outputs: the task is cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from types import CodeType
from typing import Any

from cadenza.engine.code import closure
from cadenza.graph import Node
from cadenza.pipeline import TaskSpec
from cadenza.store.base import CacheEntry, MetadataStore

_code_memo: dict[int, tuple[CodeType, tuple[str, dict[str, str]]]] = {}
_hash_memo: dict[str, str] = {}
_file_memo: dict[tuple[str, int, int], str] = {}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_hash(spec: TaskSpec) -> str:
    """Hash of ``version=`` if given, else of the shell command, else of the function's code as
    engine/code.py defines it: its source, the helpers and constants it uses from its module,
    and the content of the project modules it uses."""
    if spec.version is not None:
        text = "version:" + spec.version
    elif spec.command is not None:
        text = "command:" + spec.command
    else:
        assert spec.fn is not None
        text, modules = _closure(spec.fn)
        if modules:
            text += "".join(f"\nmodule {name}={file_hash(Path(file))}"
                            for name, file in modules.items())
    found = _hash_memo.get(text)  # a remembered source is the same str: found at once
    if found is None:
        found = _hash_memo[text] = sha256(text.encode())[:16]
    return found


def _closure(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """engine/code.py's closure of ``fn``, remembered by its code object (which the memo keeps
    alive, so the key is never reused by another function). The project modules' files are
    hashed at every call (file_hash remembers them by size and mtime), so an edit is seen."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return closure(fn)
    # By identity: code objects compare equal by value, and two functions with the same body
    # in different modules (or an edited module's helpers) may use different things.
    found = _code_memo.get(id(code))
    if found is None:
        found = _code_memo[id(code)] = (code, closure(fn))
    return found[1]


def file_hash(path: Path) -> str:
    """Content hash of a file, remembered by (path, size, mtime) within this process."""
    stat = os.stat(path)
    memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
    found = _file_memo.get(memo_key)
    if found is None:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        found = _file_memo[memo_key] = digest.hexdigest()
    return found


def inputs_hash(root: Path, entry: str) -> str:
    """The content hash of an ``inputs=`` entry: a file, a folder (every file under it), or a
    glob (every match); "missing" when nothing is there, so its appearance changes the key."""
    path = root / entry
    if path.is_file():
        return file_hash(path)
    if path.is_dir():
        matches = sorted(p for p in path.rglob("*") if p.is_file())
    elif any(c in entry for c in "*?["):
        matches = sorted(p for p in root.glob(entry) if p.is_file())
    else:
        return "missing"
    if not matches:
        return "missing"
    listing = "\n".join(f"{p.relative_to(root)}={file_hash(p)}" for p in matches)
    return sha256(listing.encode())


def canonical(value: Any) -> str:
    """A stable text for a param value: equal values, equal text."""
    return json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))


def cache_key(
    code: str,
    params: Mapping[str, Any],
    inputs: Iterable[tuple[str, str | None]],
    files: Iterable[tuple[str, str]],
    interval: tuple[str | None, str | None] | None,
    item: str | None = None,
) -> str:
    parts = [code]
    if params:
        parts += [f"p:{name}={canonical(value)}" for name, value in sorted(params.items())]
    parts += [f"i:{name}={digest}" for name, digest in inputs]
    parts += [f"f:{name}={digest}" for name, digest in files]
    if interval is not None:
        parts.append(f"t:{interval[0]}/{interval[1]}")
    if item is not None:
        parts.append(f"m:{item}")
    return sha256("\n".join(parts).encode())


Outputs = Mapping[str, tuple[str | None, Mapping[str, str]]]
"""For each upstream task: the hash of its returned value and of its declared files."""


def key_meta(
    node: Node, outputs: Outputs, params: Mapping[str, Any], root: Path,
    item: str | None = None, secret: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """What a task's cache key is made of, kept beside the entry so `plan` can say what moved."""
    inputs: dict[str, str | None] = {}
    for up in node.inputs:
        output, files = outputs[up]
        inputs[up] = output
        for name, digest in files.items():
            inputs[f"{up}.{name}"] = digest
    meta: dict[str, Any] = {
        "code": code_hash(node.spec), "inputs": inputs,
        "files": {f: inputs_hash(root, f) for f in node.input_files} if node.input_files else {},
        "params": {p: hide(params[p]) if p in secret else params[p] for p in node.params},
    }
    if item is not None:
        meta["item"] = item
    return meta


def hide(value: Any) -> str:
    """A secret as cache keys and their stored parts keep it: a hash, never the value."""
    return "sha256:" + sha256(canonical(value).encode())


def key_of(meta: Mapping[str, Any], interval: tuple[str | None, str | None] | None) -> str:
    return cache_key(
        meta["code"], meta["params"], meta["inputs"].items(), meta["files"].items(), interval,
        meta.get("item"),
    )


PRELOAD = 2_000
"""A pipeline with at most this many cache entries has them all read at a run's start (one
query); past it, a run looks each key up as it needs it (one indexed query per task).
Reading an entry costs about 50 us (its key's makings are JSON), so 2,000 cost 0.1 s."""


class CacheIndex:
    """The cache entries of one pipeline, as a run asks for them by (task, key).

    Small caches are read whole, once. A pipeline scheduled for months can hold millions of
    entries; reading them all would cost seconds at every run start, so past ``PRELOAD`` each
    key is looked up in the store when first asked for, and the answer remembered."""

    def __init__(self, store: MetadataStore, pipeline: str, preload: int | None = None) -> None:
        """``preload``: how many entries to read up front (default ``PRELOAD``); 0 for a
        caller that asks for few keys, such as `cadenza plan`: then nothing is read up front
        (finding a pipeline's newest entries means sorting all of them)."""
        self.store, self.pipeline = store, pipeline
        limit = PRELOAD if preload is None else preload
        newest = store.cache_entries(pipeline, limit=limit + 1) if limit else []
        self.complete = bool(limit) and len(newest) <= limit
        self.entries: dict[tuple[str, str], CacheEntry | None] = {
            (e.task, e.key): e for e in reversed(newest)}  # newest wins a repeated key
        self._by_task: dict[str, list[CacheEntry]] | None = None
        """A complete cache's entries by task, newest first: made when first asked for."""
        self._newest: dict[str, CacheEntry | None] = {}
        """Tasks' newest entries (None: it has none), read together by ``prefetch_newest``."""

    def prefetch_newest(self, tasks: Collection[str]) -> dict[str, CacheEntry]:
        """Read each task's newest entry with one query, for a caller that asks for it and
        for a key or two per task (`cadenza plan`): a query each is a round trip each on a
        database server. A key that is its task's newest then needs no query either. Returns
        them, by task."""
        if self.complete:  # read whole already
            return {task: entry for task in tasks
                    if (entry := next(self.newest(task), None)) is not None}
        found = self.store.newest_cache_entries(self.pipeline, tasks)
        for task in tasks:
            entry = self._newest[task] = found.get(task)
            if entry is not None:
                self.entries.setdefault((task, entry.key), entry)
        return found

    def get(self, task: str, key: str) -> CacheEntry | None:
        if self.complete or (task, key) in self.entries:
            return self.entries.get((task, key))
        rows = self.store.cache_entries(self.pipeline, task, keys=[key], limit=1)
        entry = self.entries[(task, key)] = rows[0] if rows else None
        return entry

    def prefetch(self, task: str, keys: Iterable[str]) -> None:
        """Read the entries under many keys of ``task`` at once (a mapped task's items), so
        that ``get`` finds each without a query of its own."""
        if self.complete:
            return
        wanted = [k for k in dict.fromkeys(keys) if (task, k) not in self.entries]
        if not wanted:
            return
        found = {e.key: e for e in self.store.cache_entries(self.pipeline, task, keys=wanted)}
        for key in wanted:
            self.entries[(task, key)] = found.get(key)

    def add(self, entry: CacheEntry) -> None:
        self.entries[(entry.task, entry.key)] = entry
        self._by_task = None

    def newest(self, task: str) -> Iterator[CacheEntry]:
        """A task's entries, newest first; past ``PRELOAD``, the rest are read only if the
        caller asks for more than the newest."""
        if not self.complete:
            if task in self._newest:
                newest = self._newest[task]
                first = [newest] if newest is not None else []
            else:
                first = self.store.cache_entries(self.pipeline, task, limit=1)
            yield from first
            if first:
                yield from self.store.cache_entries(self.pipeline, task)[1:]
            return
        if self._by_task is None:
            self._by_task = {}
            for entry in sorted((e for e in self.entries.values() if e),
                                key=lambda e: e.created_at, reverse=True):
                self._by_task.setdefault(entry.task, []).append(entry)
        yield from self._by_task.get(task, ())


_MISSING = object()


def fits(entry: CacheEntry, params: Mapping[str, Any], secret: frozenset[str] = frozenset()
         ) -> bool:
    """An entry fits if the params the task read through ctx.params are unchanged."""
    read: Mapping[str, Any] = entry.meta.get("params_read", {})
    return all(
        (hide(params[k]) if k in secret and k in params else params.get(k, _MISSING)) == v
        for k, v in read.items()
    )
