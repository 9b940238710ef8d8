"""Whether a process on this machine still exists."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True unless no process has ``pid`` (one we may not signal still counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
