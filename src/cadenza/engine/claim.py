"""A runner's claim on its run: who the runner is, the epoch its writes are fenced on, and the
thread that keeps the claim alive.

A run has at most one owner, and only the owner writes. ``Claim.take`` makes this runner the
owner in one compare-and-set in the store (``claim_run``), which bumps the run's epoch; every
commit of the run loop is fenced on that epoch (``apply(batch, fence)``), so a runner whose
claim was taken over changes nothing and stops (``ClaimLostError``).

Liveness does not depend on the run loop: a thread beats every ``every`` seconds
(HEARTBEAT_EVERY, 5 s), however long a task runs. Another runner may take the run over once no
beat has been seen for ``stale_after`` seconds (STALE_AFTER, 60 s) on the store's clock, or at
once when the owner's process has ended on the same host. Only a stopped process (Ctrl-Z,
SIGSTOP), a task holding the GIL, or a stalled store can miss that many beats; such a runner
finds out before it starts another task (``check``), because its own monotonic clock says its
last confirmed beat is too old, and it asks the store again before going on. A runner that
cannot reach the store at all gives its claim up by itself once its last confirmed beat is
GIVE_UP of the staleness old (its own clock, which runs no slower than the store's since the
beat was stamped after it was sent): the run loop stops its tasks at its next ``check``,
before any other runner may take the run over.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping

from cadenza.exceptions import CadenzaError, ClaimLostError, RunClaimedError
from cadenza.store.base import HEARTBEAT_EVERY, STALE_AFTER, Fence, MetadataStore

BEATS = 12
"""Heartbeats that fit in ``stale_after``: a shorter staleness (tests) beats more often."""
GIVE_UP = 0.75
"""Share of ``stale_after`` without a confirmed beat after which this runner counts its claim
as lost, store or no store: the rest is the margin for stopping its tasks."""


def new_owner() -> str:
    """``host:pid:token``: this process on this host, and a token of its own per runner (one
    process, a scheduler say, may run many runs at once)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def stale_after_from(environ: Mapping[str, str]) -> float:
    """``CADENZA_STALE_AFTER`` (seconds) if set, else STALE_AFTER. Read once, by the CLI."""
    text = environ.get("CADENZA_STALE_AFTER", "").strip()
    if not text:
        return STALE_AFTER
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise CadenzaError(
            f"CADENZA_STALE_AFTER={text!r} is not a number of seconds above 0; set it to how "
            f"long a runner may go unseen before its run is taken over (default {STALE_AFTER:g})."
        )
    return value


class Claim:
    """This runner's ownership of ``run_id`` at ``epoch``, and its heartbeat thread."""

    def __init__(self, run_id: str, owner: str, epoch: int,
                 stale_after: float = STALE_AFTER) -> None:
        self.run_id, self.owner, self.epoch, self.stale_after = run_id, owner, epoch, stale_after
        self.every = min(HEARTBEAT_EVERY, stale_after / BEATS)
        self.lost = threading.Event()
        self.holder: str | None = None
        """Who holds the run now, once this claim is known to be lost."""
        self._confirmed = time.monotonic()
        """When (this process's monotonic clock) the last beat the store accepted was sent."""
        self._store: MetadataStore | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._released = False
        self._failed = False
        """The last beat got no answer from the store (it raised)."""
        self._asking: float | None = None
        """When the beat waiting for the store now was sent (None: none waits)."""
        self._unreachable: float | None = None
        """Seconds the store went unanswered when the claim was given up for it."""

    def __repr__(self) -> str:
        return f"Claim({self.run_id!r}, {self.owner!r}, epoch={self.epoch})"

    @property
    def fence(self) -> Fence:
        return (self.run_id, self.epoch)

    @classmethod
    def take(cls, store: MetadataStore, run_id: str, stale_after: float = STALE_AFTER,
             owner: str | None = None) -> Claim:
        """Claim ``run_id`` for a new owner, or raise RunClaimedError naming its live owner."""
        owner = owner or new_owner()
        epoch = store.claim_run(run_id, owner, stale_after)
        if epoch is None:
            raise RunClaimedError(run_id, store.get_run(run_id).owner)
        return cls(run_id, owner, epoch, stale_after)

    # -- keeping it -------------------------------------------------------------------------

    def start(self, store: MetadataStore) -> None:
        """Beat once now (raise ClaimLostError if the claim is gone already), then from a
        thread of its own until ``stop``."""
        self._store = store
        if not self._beat():
            raise self._error()
        self._thread = threading.Thread(target=self._beating, daemon=True,
                                        name=f"cadenza-heartbeat-{self.run_id}")
        self._thread.start()

    def _beating(self) -> None:
        while not self._stop.wait(self.every):
            if not self._beat():
                return

    def _beat(self) -> bool:
        """One heartbeat; False (and ``lost`` set) if the store says the claim is gone. A
        store that fails to answer is asked again next time: staleness judges it."""
        store = self._store
        if store is None or self.lost.is_set():
            return not self.lost.is_set()
        sent = self._asking = time.monotonic()
        try:
            kept = store.heartbeat(self.run_id, self.owner, self.epoch)
        except Exception:  # a locked or unreachable store: not a verdict on the claim, until
            self._failed = True  # another runner may soon take the run over
            if time.monotonic() - self._confirmed > self.stale_after * GIVE_UP:
                self._give_up()
                return False
            return True
        finally:
            self._asking = None
        self._failed = False
        if kept:
            self._confirmed = max(self._confirmed, sent)
        else:
            self.lose()
        return kept

    def lose(self, holder: str | None = None) -> None:
        """Note that the claim is gone (to ``holder``, if known)."""
        self.holder = holder or self.holder
        self.lost.set()

    def _give_up(self) -> None:
        """The store went unanswered for too long: lose the claim before a runner may take it."""
        self._unreachable = time.monotonic() - self._confirmed
        self.lose()

    def check(self) -> None:
        """Raise ClaimLostError if the claim is lost, or may be: when no beat was confirmed for
        half the staleness (this process was stopped, or held up), ask the store now."""
        if not self.lost.is_set():
            late = time.monotonic() - self._confirmed
            if self._store_away():  # the heartbeat thread is asking already: do not wait too
                if late > self.stale_after * GIVE_UP:
                    self._give_up()
            elif late > self.stale_after / 2:
                self._beat()
        if self.lost.is_set():
            raise self._error()

    def _store_away(self) -> bool:
        """The last beat failed, or one has waited for the store longer than a beat's gap."""
        asking = self._asking
        return self._failed or (asking is not None and time.monotonic() - asking > self.every)

    def _error(self) -> ClaimLostError:
        if self._unreachable is not None:
            return ClaimLostError(self.run_id, None, self._unreachable)
        if self.holder is None and self._store is not None and not self._store_away():
            with contextlib.suppress(Exception):  # only for the message
                self.holder = self._store.get_run(self.run_id).owner
        return ClaimLostError(self.run_id, self.holder)

    def stop(self, store: MetadataStore | None = None) -> None:
        """Stop beating, and give the run up in ``store`` (the one it beat in, if started)
        unless the claim was lost."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.every + 1)
        store, self._store = self._store or store, None
        if store is not None and not self.lost.is_set() and not self._released:
            self._released = True  # once: a second stop (the CLI's, after the run's) is a no-op
            store.release_run(self.run_id, self.owner, self.epoch)
