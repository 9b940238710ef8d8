"""Executors: where task attempts run. Pick one by name with ``make_executor``."""

from __future__ import annotations

import os

from cadenza.exceptions import InvalidOptionError
from cadenza.executors.base import Executor, Killable
from cadenza.executors.inline import InlineExecutor
from cadenza.executors.threads import ThreadExecutor

EXECUTORS = ("inline", "threads", "processes")


def make_executor(name: str, workers: int | None = None) -> Executor:
    """Build the executor called ``name`` with ``workers`` slots (default: the CPU count)."""
    count = workers or max(os.cpu_count() or 1, 2)
    if workers is not None and workers < 1:
        raise InvalidOptionError(
            f"--workers {workers!r} is invalid: give 1 or more.", option="workers", value=workers
        )
    if name == "inline":
        return InlineExecutor()
    if name == "threads":
        return ThreadExecutor(count)
    if name == "processes":
        from cadenza.executors.processes import ProcessExecutor

        return ProcessExecutor(count)
    raise InvalidOptionError(
        f"Unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}.",
        option="executor", value=name,
    )


__all__ = ["EXECUTORS", "Executor", "InlineExecutor", "Killable", "ThreadExecutor", "make_executor"]
