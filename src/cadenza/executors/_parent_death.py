"""Processes that end with their parent: the kernel's parent-death signal, where there is one.

A processes-executor worker arms it for itself (``arm``), so that it dies with the runner even
in the middle of a call; a shell task's process, forked by such a worker, arms it too
(``for_shell``), so that a worker's death takes its shell command with it."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

_prctl: Callable[[int], int] | None = None
_looked_up = False
_worker = False  # this process is a worker with the signal armed


def prepare() -> None:
    """Look ``prctl`` up now, in the runner, so that forked processes need load nothing."""
    global _prctl, _looked_up
    if _looked_up:
        return
    _looked_up = True
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl.restype = ctypes.c_int
    pr_set_pdeathsig = 1
    _prctl = lambda sig: int(prctl(pr_set_pdeathsig, ctypes.c_ulong(sig), 0, 0, 0))  # noqa: E731


def arm() -> bool:
    """Have the kernel SIGKILL this process when the thread that forked it ends. False where
    that cannot be done (not Linux): the caller must watch for its parent some other way."""
    global _worker
    if _prctl is None or _prctl(signal.SIGKILL) != 0:
        return False
    _worker = True
    return True


def _arm_child() -> None:
    assert _prctl is not None
    _prctl(signal.SIGKILL)


def for_shell() -> Callable[[], None] | None:
    """A ``preexec_fn`` for a shell task's process: in an armed worker, arm the shell too (the
    signal is not inherited across fork); elsewhere None, the default."""
    return _arm_child if _worker else None
