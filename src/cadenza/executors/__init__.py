"""Executors: where task attempts run. Pick one by name with ``make_executor``."""

from __future__ import annotations

import os
from typing import Literal, cast

from cadenza.exceptions import CadenzaError, InvalidOptionError
from cadenza.executors.base import Executor, Killable
from cadenza.executors.inline import InlineExecutor
from cadenza.executors.threads import ThreadExecutor

EXECUTORS = ("inline", "threads", "processes", "dask")
_Isolation = Literal["processes", "threads"]


def make_executor(name: str, workers: int | None = None, *,
                  address: str | None = None, isolation: str = "processes") -> Executor:
    """Build the executor called ``name`` with ``workers`` slots (default: the CPU count).
    For dask, ``workers`` is the number of worker processes of the LocalCluster it starts,
    unless ``address`` names a running scheduler to use instead; ``isolation`` is where each
    attempt runs on its worker: a forked child (``"processes"``) or its thread."""
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
    if isolation != "processes" and name != "dask":
        raise InvalidOptionError(
            f"Isolation {isolation!r} is for the dask executor, not {name!r}: use -e dask, "
            "or drop --dask-isolation.", option="isolation", value=isolation,
        )
    if name == "dask":
        return _dask(workers, count, address, isolation)
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


def _dask(workers: int | None, count: int, address: str | None, isolation: str) -> Executor:
    try:
        from cadenza.executors.dask import DaskExecutor
    except ImportError:
        raise CadenzaError(
            "The dask executor needs dask.distributed, which is not installed here. Install "
            "it with: pip install 'cadenza[dask]'"
        ) from None
    if isolation not in ("processes", "threads"):
        raise InvalidOptionError(
            f"Dask isolation {isolation!r} is invalid: give 'processes' (each attempt in a "
            "child process a kill ends) or 'threads' (in the Dask worker's thread).",
            option="isolation", value=isolation,
        )
    if address is None:
        return DaskExecutor(n_workers=count, isolation=cast(_Isolation, isolation))
    if workers is not None:
        raise InvalidOptionError(
            f"--workers {workers!r} sizes a Dask cluster cadenza starts; the one at "
            f"{address!r} has its own workers. Drop --workers.", option="workers", value=workers,
        )
    return DaskExecutor(address=address, isolation=cast(_Isolation, isolation))


__all__ = ["EXECUTORS", "Executor", "InlineExecutor", "Killable", "ThreadExecutor", "make_executor"]
