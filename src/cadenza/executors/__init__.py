"""Executors: where task attempts run. Pick one by name with ``make_executor``."""

from __future__ import annotations

import os

from cadenza.exceptions import CadenzaError, InvalidOptionError
from cadenza.executors.base import Executor, Killable
from cadenza.executors.inline import InlineExecutor
from cadenza.executors.threads import ThreadExecutor

EXECUTORS = ("inline", "threads", "processes", "dask")


def make_executor(name: str, workers: int | None = None, *,
                  address: str | None = None) -> Executor:
    """Build the executor called ``name`` with ``workers`` slots (default: the CPU count).
    For dask, ``workers`` is the number of worker processes of the LocalCluster it starts,
    unless ``address`` names a running scheduler to use instead."""
    count = workers or max(os.cpu_count() or 1, 2)
    if workers is not None and workers < 1:
        raise InvalidOptionError(
            f"--workers {workers!r} is invalid: give 1 or more.", option="workers", value=workers
        )
    if address is not None and name != "dask":
        raise InvalidOptionError(
            f"A Dask address ({address!r}) is for the dask executor, not {name!r}: "
            "use -e dask, or drop the address.", option="address", value=address,
        )
    if name == "dask":
        return _dask(workers, count, address)
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


def _dask(workers: int | None, count: int, address: str | None) -> Executor:
    try:
        from cadenza.executors.dask import DaskExecutor
    except ImportError:
        raise CadenzaError(
            "The dask executor needs dask.distributed, which is not installed here. Install "
            "it with: pip install 'cadenza[dask]'"
        ) from None
    if address is None:
        return DaskExecutor(n_workers=count)
    if workers is not None:
        raise InvalidOptionError(
            f"--workers {workers!r} sizes a Dask cluster cadenza starts; the one at "
            f"{address!r} has its own workers. Drop --workers.", option="workers", value=workers,
        )
    return DaskExecutor(address=address)


__all__ = ["EXECUTORS", "Executor", "InlineExecutor", "Killable", "ThreadExecutor", "make_executor"]
