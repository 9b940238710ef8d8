"""The outputs a run holds: values kept in memory, and values stored since the last commit.

Tasks that run in this process hand their return values to the loop, which keeps them for
the tasks downstream; a value from an earlier run, or from another process, is loaded once,
from the artifacts stored since the last commit if it is one of them (the store has no
record of it yet), else through the store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cadenza.artifacts.integrity import check
from cadenza.artifacts.serializers import deserialize
from cadenza.engine.attempt import StoredValue, ValueRef
from cadenza.engine.journal import Instance, Key
from cadenza.engine.result import load_value
from cadenza.exceptions import CadenzaError
from cadenza.workspace import Workspace


class Values:
    def __init__(self, workspace: Workspace, keep: bool) -> None:
        self.ws = workspace
        self.keep = keep
        """Keep returned values in memory (inline and threads; a process sends bytes only)."""
        self.held: dict[Key, Any] = {}
        self.fresh: dict[str, StoredValue] = {}
        """Values stored since the last commit, by hash."""

    def stored(self, key: Key, value: Any, stored: StoredValue) -> None:
        """``key``'s output ``value`` was just stored as ``stored``."""
        self.fresh[stored.hash] = stored
        if self.keep:
            self.held[key] = value

    def committed(self) -> None:
        self.fresh.clear()

    def of(self, ti: Instance) -> Any:
        """The value ``ti`` returned (None if it has none), loaded at most once."""
        key = (ti.task, ti.index)
        if key not in self.held:
            self.held[key] = None if ti.output is None else self.load(ti.output)
        return self.held[key]

    def preload(self, tis: list[Instance]) -> None:
        """Load the values of many instances not held yet with one read of the store (a mapped
        task's items from an earlier run, before its list is made): not a query each."""
        wanted = [ti for ti in tis if ti.output is not None and ti.output not in self.fresh
                  and (ti.task, ti.index) not in self.held]
        if len(wanted) < 2:
            return
        found = self.ws.store.artifact_data([ti.output for ti in wanted if ti.output])
        for ti in wanted:
            assert ti.output is not None
            if ti.output not in found:
                continue  # `take` says that it is missing
            serializer, data = found[ti.output]
            if data is None:
                data = self.ws.artifacts.get(ti.output)  # checked against its hash by the store
            else:
                data = check(ti.output, data, "the metadata store")
            self.held[(ti.task, ti.index)] = deserialize(serializer, data)

    def ref(self, ti: Instance) -> ValueRef | None:
        """``ti``'s output for another process: a reference it loads itself (None if none)."""
        digest = ti.output
        if digest is None:
            return None
        stored = self.fresh.get(digest)
        if stored is not None:
            return ValueRef(digest, stored.serializer, stored.data)
        found = self.ws.store.artifact_data([digest]).get(digest)
        if found is None:
            raise CadenzaError(f"No artifact has the hash {digest!r} in {self.ws.home}.")
        return ValueRef(digest, *found)

    def take(self, ti: Instance) -> Any:
        """Like ``of``, for a mapped item whose value is needed once: it is not kept."""
        key = (ti.task, ti.index)
        if key in self.held:
            return self.held.pop(key)
        assert ti.output is not None
        return self.load(ti.output)

    def load(self, digest: str) -> Any:
        stored = self.fresh.get(digest)
        if stored is None:
            return load_value(self.ws, digest)
        data = stored.data if stored.data is not None else self.ws.artifacts.get(digest)
        return deserialize(stored.serializer, data)

    def file(self, ti: Instance) -> Path:
        """A file holding ``ti``'s output, for a shell command to read."""
        if ti.output is None:
            return Path(os.devnull)
        artifacts = self.ws.artifacts
        path = artifacts.path(ti.output)
        if path is None:
            record = self.ws.store.artifact(ti.output)
            assert record is not None and record.data is not None
            artifacts.put(ti.output, check(ti.output, record.data, "the metadata store"))
            path = artifacts.path(ti.output)
        if path is None:
            raise CadenzaError(
                f"Shell task inputs need artifacts on disk, but {artifacts!r} keeps none; run "
                "with a workspace on disk (home=...)."
            )
        return path
