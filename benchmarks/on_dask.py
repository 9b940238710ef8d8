"""Time cadenza on Dask beside bare Dask, on the same LocalCluster in the same run. (Not
named dask.py: run as a script, this folder comes first on sys.path and would shadow dask.)

    python benchmarks/on_dask.py [--tasks 1000] [--reps 3] [--workers 2] [--json]

The shape is fan1000: a source, N no-op tasks that each take it, and a sink. cadenza runs it
with ``-e dask``'s executor (each attempt sent by reference and run in a warm child process of
its Dask worker's pool), a fresh home each time and ``force=True``. The baselines submit N no-op
functions with ``client.submit`` and collect them with ``as_completed``: all at once, and at
most ``max_workers`` in flight (what cadenza keeps in flight). Each number is the median of
``--reps`` runs after one warm-up run of each. Runner CPU is this process's (the Dask
client's threads included) over the run. Nothing here fails on a slow machine: the ratios
print beside the issue's targets (<= 1.25x all at once, <= 1.2x at the same in-flight limit).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def noop(i: int) -> int:
    return i


def write_pipeline(folder: Path, n: int) -> Path:
    """fan``n`` as a pipeline file, as a user has one: the workers load it by reference."""
    lines = ["from cadenza import Pipeline", "", 'pipe = Pipeline("dask_fan")', "",
             "@pipe.task", "def source():", "    return 1", ""]
    for i in range(n):
        lines += ["@pipe.task", f"def t{i}(source):", "    return source", ""]
    lines += ["@pipe.task", f"def sink({', '.join(f't{i}' for i in range(n))}):",
              "    return 0", ""]
    path = folder / "dask_fan.py"
    path.write_text("\n".join(lines))
    return path


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_cadenza(pipe: Any, executor: Any, folder: Path) -> tuple[float, float]:
    home = Path(tempfile.mkdtemp(dir=folder))
    try:
        started, used = time.perf_counter(), cpu()
        result = pipe.run(executor=executor, home=home / ".cadenza", force=True)
        wall, used = time.perf_counter() - started, cpu() - used
        if not result.ok:
            raise SystemExit(f"the cadenza run failed: {result.state}")
        return wall, used
    finally:
        shutil.rmtree(home, ignore_errors=True)


def time_bare(client: Any, n: int, limit: int | None) -> tuple[float, float]:
    from distributed import as_completed

    started, used = time.perf_counter(), cpu()
    if limit is None:
        for future in as_completed([client.submit(noop, i, pure=False) for i in range(n)],
                                   loop=client.loop):
            future.result()
    else:
        submitted = min(limit, n)
        pending = as_completed([client.submit(noop, i, pure=False) for i in range(submitted)],
                               loop=client.loop)
        for future in pending:
            future.result()
            if submitted < n:
                pending.add(client.submit(noop, submitted, pure=False))
                submitted += 1
    return time.perf_counter() - started, cpu() - used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import dask
    from distributed import Client, LocalCluster

    from cadenza._loader import load_pipeline
    from cadenza.executors.dask import DaskExecutor

    folder = Path(tempfile.mkdtemp(prefix="cadenza-dask-bench-"))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    client = Client(cluster, set_as_default=False)
    executor = DaskExecutor(client)
    try:
        pipe = load_pipeline(str(write_pipeline(folder, args.tasks)))
        instances = args.tasks + 2
        time_cadenza(pipe, executor, folder)  # warm-up: the workers load the file once
        time_bare(client, args.tasks, None)
        runs = [time_cadenza(pipe, executor, folder) for _ in range(args.reps)]
        bare = [time_bare(client, args.tasks, None) for _ in range(args.reps)]
        limited = [time_bare(client, args.tasks, executor.max_workers)
                   for _ in range(args.reps)]
    finally:
        executor.shutdown()
        client.close()
        cluster.close()
        shutil.rmtree(folder, ignore_errors=True)
    wall = statistics.median(w for w, _ in runs)
    used = statistics.median(c for _, c in runs)
    row = {
        "tasks": instances, "workers": args.workers, "max_workers": executor.max_workers,
        "cadenza_s": wall, "bare_s": statistics.median(w for w, _ in bare),
        "bare_limited_s": statistics.median(w for w, _ in limited),
        "runner_cpu_ms_per_task": 1000 * used / instances,
        "bare_cpu_ms_per_task": 1000 * statistics.median(c for _, c in bare) / args.tasks,
    }
    row["ratio"] = row["cadenza_s"] / row["bare_s"]
    row["ratio_limited"] = row["cadenza_s"] / row["bare_limited_s"]
    if args.json:
        json.dump(row, sys.stdout)
        print()
        return
    print(f"fan{args.tasks} on LocalCluster(n_workers={args.workers}, threads_per_worker=1), "
          f"median of {args.reps}:")
    print(f"  cadenza -e dask            {wall:7.2f} s  ({1000 * wall / instances:.2f} ms/task,"
          f" runner CPU {row['runner_cpu_ms_per_task']:.2f} ms/task)")
    print(f"  bare submit + as_completed {row['bare_s']:7.2f} s  ratio {row['ratio']:.2f}x "
          f"({'PASS' if row['ratio'] <= 1.25 else 'MISS'} <= 1.25x; runner CPU "
          f"{row['bare_cpu_ms_per_task']:.2f} ms/task)")
    print(f"  bare, {executor.max_workers} in flight        {row['bare_limited_s']:7.2f} s  "
          f"ratio {row['ratio_limited']:.2f}x "
          f"({'PASS' if row['ratio_limited'] <= 1.2 else 'MISS'} <= 1.2x)")


if __name__ == "__main__":
    main()
