"""A module that imports cleanly but defines no Pipeline."""

from __future__ import annotations

import cadenza

VERSION = cadenza.__version__


def ingest() -> int:
    return 1
