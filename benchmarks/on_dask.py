"""Time cadenza on Dask beside bare Dask (and inline), on the same cluster in the same run.
(Not named dask.py: run as a script, this folder comes first on sys.path and would shadow dask.)

    python benchmarks/on_dask.py [--shape fan|sleep32|map|cpu|all] [--tasks 1000]
                                 [--items 10000] [--reps 3] [--workers 2] [--quick] [--json]
                                 [--profile FILE]

Shapes (each on a cluster of its own; cadenza runs a pipeline file, which the workers load by
reference, each attempt in a warm child process of its worker's pool; a fresh home each time,
``force=True``; each number the median of ``--reps`` runs after one warm-up run of each):

- ``fan``: a source, ``--tasks`` no-op tasks that each take it, and a sink, on
  ``LocalCluster(--workers x 1 thread)``. Baselines: ``--tasks`` no-op ``client.submit`` calls
  collected with ``as_completed``, all at once and at most ``max_workers`` in flight (what
  cadenza keeps in flight). Targets: <= 1.25x and <= 1.2x.
- ``sleep32``: 32 independent tasks of ``time.sleep(0.25)`` on ``LocalCluster(2 x 2 threads)``;
  the ideal is 2.0 s (target: within 10%), beside 32 bare ``client.submit(time.sleep, 0.25)``.
- ``map``: a source returns ``--items`` ints, ``map_over`` doubles each, a sink sums them
  (fan100k with ``--items 100000``), with ``-e dask`` beside the inline executor.
- ``cpu``: fan on a cluster in other processes (``dask scheduler`` and ``dask worker``
  started here as subprocesses), so that the runner's CPU is cadenza's and its Dask client's
  only: this process's CPU time over the run, per task (target <= 1 ms), beside bare Dask's.
  ``--profile FILE`` writes a cProfile of one cadenza run there.

Nothing here fails on a slow machine: ratios print beside their targets (PASS / MISS).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def noop(i: int) -> int:
    return i


def write_fan(folder: Path, n: int) -> Path:
    """fan``n`` as a pipeline file, as a user has one: the workers load it by reference."""
    lines = ["from cadenza import Pipeline", "", 'pipe = Pipeline("dask_fan")', "",
             "@pipe.task", "def source():", "    return 1", ""]
    for i in range(n):
        lines += ["@pipe.task", f"def t{i}(source):", "    return source", ""]
    lines += ["@pipe.task", f"def sink({', '.join(f't{i}' for i in range(n))}):",
              "    return 0", ""]
    return _write(folder, "dask_fan.py", lines)


def write_sleeps(folder: Path, n: int, seconds: float) -> Path:
    lines = ["import time", "from cadenza import Pipeline", "", 'pipe = Pipeline("dask_sleep")',
             ""]
    for i in range(n):
        lines += ["@pipe.task", f"def s{i}():", f"    time.sleep({seconds!r})", ""]
    return _write(folder, "dask_sleep.py", lines)


def write_map(folder: Path, n: int) -> Path:
    return _write(folder, "dask_map.py", [
        "from cadenza import Pipeline", "", 'pipe = Pipeline("dask_map")', "",
        "@pipe.task", "def numbers():", f"    return list(range({n}))", "",
        '@pipe.task(map_over="numbers")', "def double(numbers):", "    return 2 * numbers", "",
        "@pipe.task", "def total(double):", "    return sum(double)", ""])


def _write(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
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


def time_bare(client: Any, fn: Callable[..., Any], args: list[Any],
              limit: int | None = None) -> tuple[float, float]:
    """``fn(arg)`` for each arg with ``client.submit``, collected with ``as_completed``: all
    at once, or at most ``limit`` in flight."""
    from distributed import as_completed

    started, used = time.perf_counter(), cpu()
    first = args if limit is None else args[:limit]
    pending = as_completed([client.submit(fn, a, pure=False) for a in first], loop=client.loop)
    left = iter(args[len(first):])
    for future in pending:
        future.result()
        for a in left:
            pending.add(client.submit(fn, a, pure=False))
            break
    return time.perf_counter() - started, cpu() - used


def median(runs: list[tuple[float, float]], which: int = 0) -> float:
    return statistics.median(r[which] for r in runs)


@contextlib.contextmanager
def local_cluster(workers: int, threads: int) -> Iterator[Any]:
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                               dashboard_address="127.0.0.1:0")
    client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@contextlib.contextmanager
def separate_cluster(workers: int) -> Iterator[Any]:
    """A scheduler and ``workers`` one-thread workers, each a ``dask`` command of its own."""
    from distributed import Client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    processes = [subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port",
                                   str(port), "--dashboard-address", "127.0.0.1:0"], **quiet)]
    try:
        processes += [subprocess.Popen(["dask", "worker", address, "--nthreads", "1",
                                        "--dashboard-address", "127.0.0.1:0"], **quiet)
                      for _ in range(workers)]
        client = Client(address, set_as_default=False, timeout=60)
        try:
            client.wait_for_workers(workers, timeout=60)
            yield client
        finally:
            client.close()
    finally:
        for process in processes[::-1]:
            process.terminate()
            process.wait(30)


def bench_fan(args: argparse.Namespace, folder: Path) -> Row:
    from cadenza._loader import load_pipeline
    from cadenza.executors.dask import DaskExecutor

    n = args.tasks
    with local_cluster(args.workers, 1) as client:
        executor = DaskExecutor(client)
        try:
            pipe = load_pipeline(str(write_fan(folder, n)))
            time_cadenza(pipe, executor, folder)  # warm-up: the workers load the file once
            time_bare(client, noop, list(range(n)))
            runs = [time_cadenza(pipe, executor, folder) for _ in range(args.reps)]
            bare = [time_bare(client, noop, list(range(n))) for _ in range(args.reps)]
            limited = [time_bare(client, noop, list(range(n)), executor.max_workers)
                       for _ in range(args.reps)]
        finally:
            executor.shutdown()
    row: Row = {"shape": f"fan{n}", "tasks": n + 2, "workers": args.workers,
                "max_workers": executor.max_workers, "cadenza_s": median(runs),
                "bare_s": median(bare), "bare_limited_s": median(limited),
                "runner_cpu_ms_per_task": 1000 * median(runs, 1) / (n + 2),
                "bare_cpu_ms_per_task": 1000 * median(bare, 1) / n}
    row["ratio"] = row["cadenza_s"] / row["bare_s"]
    row["ratio_limited"] = row["cadenza_s"] / row["bare_limited_s"]
    return row


def bench_sleep(args: argparse.Namespace, folder: Path) -> Row:
    from cadenza._loader import load_pipeline
    from cadenza.executors.dask import DaskExecutor

    count, seconds = (8, 0.05) if args.quick else (32, 0.25)
    ideal = count * seconds / 4
    with local_cluster(2, 2) as client:
        executor = DaskExecutor(client)
        try:
            pipe = load_pipeline(str(write_sleeps(folder, count, seconds)))
            time_cadenza(pipe, executor, folder)
            runs = [time_cadenza(pipe, executor, folder) for _ in range(args.reps)]
            bare = [time_bare(client, time.sleep, [seconds] * count) for _ in range(args.reps)]
        finally:
            executor.shutdown()
    row: Row = {"shape": f"sleep{count}", "tasks": count, "threads": 4, "ideal_s": ideal,
                "cadenza_s": median(runs), "bare_s": median(bare)}
    row["ratio_ideal"] = row["cadenza_s"] / ideal
    row["ratio"] = row["cadenza_s"] / row["bare_s"]
    return row


def bench_map(args: argparse.Namespace, folder: Path) -> Row:
    from cadenza._loader import load_pipeline
    from cadenza.executors import InlineExecutor
    from cadenza.executors.dask import DaskExecutor

    n = args.items
    with local_cluster(args.workers, 1) as client:
        executor = DaskExecutor(client)
        try:
            pipe = load_pipeline(str(write_map(folder, n)))
            runs = [time_cadenza(pipe, executor, folder) for _ in range(args.reps)]
        finally:
            executor.shutdown()
    inline = [time_cadenza(pipe, InlineExecutor(), folder) for _ in range(args.reps)]
    row: Row = {"shape": f"map{n}", "tasks": n + 3, "workers": args.workers,
                "cadenza_s": median(runs), "inline_s": median(inline),
                "runner_cpu_ms_per_task": 1000 * median(runs, 1) / (n + 3)}
    row["ratio"] = row["cadenza_s"] / row["inline_s"]
    return row


def bench_cpu(args: argparse.Namespace, folder: Path) -> Row:
    from cadenza._loader import load_pipeline
    from cadenza.executors.dask import DaskExecutor

    n = args.tasks
    with separate_cluster(args.workers) as client:
        executor = DaskExecutor(client)
        try:
            pipe = load_pipeline(str(write_fan(folder, n)))
            time_cadenza(pipe, executor, folder)
            time_bare(client, noop, list(range(n)))
            runs = [time_cadenza(pipe, executor, folder) for _ in range(args.reps)]
            bare = [time_bare(client, noop, list(range(n))) for _ in range(args.reps)]
            if args.profile:
                import cProfile

                profile = cProfile.Profile()
                profile.runcall(time_cadenza, pipe, executor, folder)
                profile.dump_stats(args.profile)
        finally:
            executor.shutdown()
    row: Row = {"shape": f"cpu-fan{n}", "tasks": n + 2, "workers": args.workers,
                "cadenza_s": median(runs), "bare_s": median(bare),
                "runner_cpu_ms_per_task": 1000 * median(runs, 1) / (n + 2),
                "bare_cpu_ms_per_task": 1000 * median(bare, 1) / n}
    return row


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def show(row: Row, reps: int) -> None:
    shape = row["shape"]
    if shape.startswith("fan"):
        print(f"{shape} on LocalCluster({row['workers']} x 1 thread), median of {reps}:")
        print(f"  cadenza -e dask            {row['cadenza_s']:7.2f} s  (runner CPU "
              f"{row['runner_cpu_ms_per_task']:.2f} ms/task, scheduler included)")
        print(f"  bare submit + as_completed {row['bare_s']:7.2f} s  ratio {row['ratio']:.2f}x "
              f"({verdict(row['ratio'] <= 1.25)} <= 1.25x)")
        print(f"  bare, {row['max_workers']} in flight        {row['bare_limited_s']:7.2f} s  "
              f"ratio {row['ratio_limited']:.2f}x ({verdict(row['ratio_limited'] <= 1.2)} "
              "<= 1.2x)")
    elif shape.startswith("sleep"):
        print(f"{shape} on LocalCluster(2 x 2 threads), median of {reps}:")
        print(f"  cadenza -e dask {row['cadenza_s']:6.2f} s  ratio to the ideal "
              f"{row['ideal_s']:.2f} s: {row['ratio_ideal']:.3f} "
              f"({verdict(row['ratio_ideal'] <= 1.10)} within 10%)")
        print(f"  bare Dask       {row['bare_s']:6.2f} s  cadenza / bare {row['ratio']:.3f}")
    elif shape.startswith("map"):
        print(f"{shape} (map_over) on LocalCluster({row['workers']} x 1 thread), "
              f"median of {reps}:")
        print(f"  cadenza -e dask {row['cadenza_s']:7.2f} s  (runner CPU "
              f"{row['runner_cpu_ms_per_task']:.2f} ms/task)")
        print(f"  cadenza inline  {row['inline_s']:7.2f} s  dask / inline {row['ratio']:.2f}x")
    else:
        print(f"{shape} on a scheduler and {row['workers']} workers in other processes, "
              f"median of {reps}:")
        print(f"  cadenza -e dask {row['cadenza_s']:7.2f} s  runner CPU "
              f"{row['runner_cpu_ms_per_task']:.3f} ms/task "
              f"({verdict(row['runner_cpu_ms_per_task'] <= 1.0)} <= 1 ms)")
        print(f"  bare Dask       {row['bare_s']:7.2f} s  client CPU "
              f"{row['bare_cpu_ms_per_task']:.3f} ms/task")


SHAPES: dict[str, Callable[[argparse.Namespace, Path], Row]] = {
    "fan": bench_fan, "sleep32": bench_sleep, "map": bench_map, "cpu": bench_cpu,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=[*SHAPES, "all"], default="fan")
    parser.add_argument("--tasks", type=int, default=1000, help="fan and cpu: middle tasks")
    parser.add_argument("--items", type=int, default=10_000,
                        help="map: mapped items (100000 for fan100k)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one repetition: a smoke test")
    parser.add_argument("--profile", metavar="FILE", help="cpu: cProfile one cadenza run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.items, args.reps = 20, 200, 1

    folder = Path(tempfile.mkdtemp(prefix="cadenza-dask-bench-"))
    rows = []
    try:
        for name in SHAPES if args.shape == "all" else [args.shape]:
            rows.append(SHAPES[name](args, folder))
            if not args.json:
                show(rows[-1], args.reps)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        json.dump({"rows": rows}, sys.stdout)
        print()


if __name__ == "__main__":
    main()
