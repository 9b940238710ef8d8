"""Time cadenza's run engine on four graph shapes against a plain ``graphlib`` loop.

    python benchmarks/run.py [--shape chain100|fan1000|fan100k|sleep32|all]
                             [--executor inline|threads|processes] [--quick] [--json]

Each measurement runs the pipeline with a fresh ``home`` (so SQLite starts empty and nothing
is cached) and ``force=True``. The baseline calls the same functions in the order
``graphlib.TopologicalSorter`` gives, in the same process. Overhead per task instance is
``(cadenza - baseline) / instances``. Targets print PASS or MISS; the exit code is 0 unless a
run itself failed, because timings depend on the machine and must never fail CI.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import cadenza
from cadenza import Pipeline

SHAPES = ("chain100", "fan1000", "fan100k", "sleep32")
EXECUTORS = ("inline", "threads", "processes")


# -- the tasks ---------------------------------------------------------------------------------
# Task functions live at module level, and generated ones are put into this module's globals,
# so that the processes executor (fork) can pickle each of them by reference.


def source() -> int:
    return 1


def noop(source: int) -> int:
    return source


def numbers(n: int) -> list[int]:
    return list(range(n))


def double(numbers: int) -> int:
    return numbers * 2


def total(double: list[int]) -> int:
    return sum(double)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def generated(fn_name: str, params: list[str], body: str) -> Callable[..., Any]:
    """A module-level function ``fn_name(*params)`` returning ``body``, made with exec()."""
    if fn_name not in globals():
        exec(f"def {fn_name}({', '.join(params)}):\n    return {body}\n", globals())
    fn: Callable[..., Any] = globals()[fn_name]
    return fn


# -- shapes -------------------------------------------------------------------------------------


@dataclass
class TaskDef:
    name: str
    fn: Callable[..., Any]
    params: list[str]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Shape:
    name: str
    tasks: list[TaskDef]
    instances: int
    """Task instances a run executes: mapped items count one each, plus the mapped parent."""
    sink: str
    expected: Any


def chain(n: int) -> Shape:
    tasks = [TaskDef("t0", source, [])]
    for i in range(1, n):
        fn = generated(f"_chain_{i}", [f"t{i - 1}"], f"t{i - 1}")
        tasks.append(TaskDef(f"t{i}", fn, [f"t{i - 1}"]))
    return Shape(f"chain{n}", tasks, n, f"t{n - 1}", 1)


def fan(n: int) -> Shape:
    middle = [f"w{i}" for i in range(n)]
    sink = generated(f"_fan_sink_{n}", middle, " + ".join(middle))
    tasks = [TaskDef("source", source, [])]
    tasks += [TaskDef(name, noop, ["source"]) for name in middle]
    tasks.append(TaskDef("sink", sink, middle))
    return Shape(f"fan{n}", tasks, n + 2, "sink", n)


def mapped(n: int) -> Shape:
    items = generated(f"_numbers_{n}", [], f"numbers({n})")
    tasks = [
        TaskDef("numbers", items, []),
        TaskDef("double", double, ["numbers"], {"map_over": "numbers"}),
        TaskDef("total", total, ["double"]),
    ]
    return Shape(f"map{n}", tasks, n + 3, "total", n * (n - 1))


def sleeps(n: int, seconds: float) -> Shape:
    fn = generated(f"_nap_{int(seconds * 1000)}ms", [], f"nap({seconds!r})")
    return Shape(f"sleep{n}", [TaskDef(f"s{i}", fn, []) for i in range(n)], n, "s0", seconds)


def build(shape: Shape) -> tuple[Pipeline, float]:
    """Define the pipeline and check its graph; return it and the seconds that took."""
    started = time.perf_counter()
    pipe = Pipeline(f"bench_{shape.name}")
    for task in shape.tasks:
        pipe.task(task.fn, name=task.name, **task.options)
    pipe.graph()
    return pipe, time.perf_counter() - started


# -- measuring ------------------------------------------------------------------------------------


def run_baseline(shape: Shape) -> Any:
    """The same calls in topological order, values passed in a dict: no state, no storage."""
    by_name = {task.name: task for task in shape.tasks}
    values: dict[str, Any] = {}
    for name in TopologicalSorter({t.name: t.params for t in shape.tasks}).static_order():
        task = by_name[name]
        kwargs = {p: values[p] for p in task.params}
        over = task.options.get("map_over")
        if over is None:
            values[name] = task.fn(**kwargs)
        else:
            values[name] = [task.fn(**{**kwargs, over: item}) for item in kwargs[over]]
    return values[shape.sink]


def run_pool(shape: Shape, workers: int) -> None:
    """sleep32's second baseline: the same calls on a plain ThreadPoolExecutor."""
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(task.fn) for task in shape.tasks]:
            future.result()


class RunFailedError(Exception):
    """A benchmark run did not succeed: the numbers would mean nothing."""


def run_cadenza(pipe: Pipeline, shape: Shape, executor: str, workers: int) -> float:
    """Time one run in a fresh home, check it succeeded and gave the right answer."""
    scratch = Path(tempfile.mkdtemp(prefix="cadenza-bench-"))
    try:
        gc.collect()
        started = time.perf_counter()
        result = pipe.run(
            executor=executor, workers=workers, home=scratch / ".cadenza", force=True
        )
        elapsed = time.perf_counter() - started
        try:
            if not result.ok:
                failed = {n: t.error for n, t in result.tasks.items() if t.state != "success"}
                raise RunFailedError(f"{shape.name} on {executor}: {result!r} {failed}")
            got = result.output(shape.sink)
            if got != shape.expected:
                raise RunFailedError(f"{shape.name}: sink gave {got!r}, not {shape.expected!r}")
        finally:
            result.workspace.close()
        return elapsed
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def max_rss_bytes(who: int = resource.RUSAGE_SELF) -> int:
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    rss = resource.getrusage(who).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


# -- the rows -------------------------------------------------------------------------------------


@dataclass
class Target:
    what: str
    limit: float
    value: float
    unit: str
    judged: bool = True

    @property
    def verdict(self) -> str:
        if not self.judged:
            return "-"
        return "PASS" if self.value <= self.limit else "MISS"

    def text(self) -> str:
        return f"{self.what} <= {self.limit:g} {self.unit}"


@dataclass
class Row:
    shape: str
    executor: str
    workers: int
    instances: int
    reps: int
    cadenza_s: float
    """Median wall time of ``pipe.run`` over the warm repetitions (all but the first)."""
    cold_s: float
    """The first run of a freshly defined pipeline: per-process memos (code hashes) may still be
    cold, as they always are for ``cadenza run`` on the command line (one run per process)."""
    define_s: float
    baseline_s: float
    baseline: str
    overhead_us: float
    """``(cadenza_s - baseline_s) / instances``, in microseconds."""
    all_s: list[float]
    extra: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)


def measure(
    shape: Shape, executor: str, workers: int, reps: int,
    baseline: tuple[str, float] | None = None,
) -> Row:
    """Time the graphlib baseline (unless one is given) and ``reps`` runs of one pipeline."""
    if baseline is None:
        baseline = ("graphlib", statistics.median(timed(lambda: run_baseline(shape), reps)))
    pipe, define_s = build(shape)
    runs = [run_cadenza(pipe, shape, executor, workers) for _ in range(reps)]
    cadenza = statistics.median(runs[1:] or runs)
    return Row(
        shape.name, executor, 1 if executor == "inline" else workers, shape.instances, reps,
        cadenza, runs[0], define_s,
        baseline[1], baseline[0], (cadenza - baseline[1]) / shape.instances * 1e6, runs,
    )


def bench_chain(executor: str, quick: bool, reps: int) -> Row:
    return measure(chain(100), executor, 2, reps)


def bench_fan(executor: str, quick: bool, reps: int) -> Row:
    row = measure(fan(100 if quick else 1000), executor, 2, reps)
    limit = {"inline": 50, "processes": 500}.get(executor)
    if limit is not None:
        row.targets.append(Target("overhead", limit, row.overhead_us, "us/task", not quick))
    return row


def bench_mapped(executor: str, quick: bool, reps: int) -> Row:
    """One child process per repetition, so that its peak RSS is this shape's alone."""
    n = 2_000 if quick else 100_000
    children = []
    for _ in range(reps):
        command = [sys.executable, __file__, "--child", str(n), "--executor", executor]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RunFailedError(f"fan100k child failed ({done.returncode}):\n{done.stderr}")
        children.append(json.loads(done.stdout.strip().splitlines()[-1]))
    cadenza = statistics.median(c["cadenza_s"] for c in children)
    baseline = statistics.median(c["baseline_s"] for c in children)
    peak = max(c["rss"] for c in children)
    row = Row(
        "fan100k" if not quick else f"map{n}", executor, 1 if executor == "inline" else 2,
        n + 3, reps, cadenza,
        children[0]["cadenza_s"], children[0]["define_s"], baseline, "graphlib",
        (cadenza - baseline) / (n + 3) * 1e6, [c["cadenza_s"] for c in children],
        extra={
            "peak_rss_mib": peak / 2**20,
            "baseline_rss_mib": max(c["baseline_rss"] for c in children) / 2**20,
            "workers_rss_mib": max(c["children_rss"] for c in children) / 2**20,
        },
    )
    row.targets.append(Target("wall", 10, cadenza, "s", not quick))
    row.targets.append(Target("peak RSS", 1024, peak / 2**20, "MiB", not quick))
    return row


def child_mapped(n: int, executor: str) -> None:
    """``--child N``: the baseline, then one cadenza run, in this process; print a JSON line.

    ru_maxrss is a high-water mark, so it is read after the baseline (its peak) and after
    cadenza (the peak of both, which is cadenza's unless cadenza needs less than a list).
    """
    shape = mapped(n)
    started = time.perf_counter()
    run_baseline(shape)
    baseline_s = time.perf_counter() - started
    gc.collect()
    baseline_rss = max_rss_bytes()
    pipe, define_s = build(shape)
    cadenza_s = run_cadenza(pipe, shape, executor, 2)
    print(json.dumps({
        "baseline_s": baseline_s, "cadenza_s": cadenza_s, "define_s": define_s,
        "baseline_rss": baseline_rss, "rss": max_rss_bytes(),
        "children_rss": max_rss_bytes(resource.RUSAGE_CHILDREN),
    }))


def bench_sleep(executor: str, quick: bool, reps: int) -> Row:
    count, seconds, workers = (8, 0.05, 4) if quick else (32, 0.25, 4)
    shape = sleeps(count, seconds)
    ideal = count * seconds / workers
    pool = statistics.median(timed(lambda: run_pool(shape, workers), reps))
    row = measure(shape, executor, workers, reps, baseline=("ideal", ideal))
    row.extra["thread_pool_s"] = pool
    off = abs(row.cadenza_s - ideal) / ideal * 100
    row.targets.append(Target("off ideal", 5, off, "%", not quick))
    return row


BENCHES: dict[str, tuple[Callable[[str, bool, int], Row], tuple[str, ...], int]] = {
    # shape: (bench, default executors, default repetitions)
    "chain100": (bench_chain, ("inline",), 5),
    "fan1000": (bench_fan, ("inline", "processes"), 5),
    "fan100k": (bench_mapped, ("inline",), 1),
    "sleep32": (bench_sleep, ("threads", "processes"), 3),
}


# -- output ---------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = (
        f"{'shape':<9} {'executor':<12} {'tasks':>7} {'reps':>4} {'cadenza s':>10} "
        f"{'1st run s':>10} {'baseline s':>17} {'us/task':>9}  target"
    )
    lines = [head, "-" * (len(head) + 30)]
    for row in rows:
        where = f"{row.executor}/{row.workers}" if row.executor != "inline" else "inline"
        base = f"{row.baseline_s:.4f} {row.baseline}"
        targets = ", ".join(f"{t.text()}: {t.value:.4g} {t.verdict}" for t in row.targets)
        lines.append(
            f"{row.shape:<9} {where:<12} {row.instances:>7} {row.reps:>4} {row.cadenza_s:>10.4f} "
            f"{row.cold_s:>10.4f} {base:>17} {row.overhead_us:>9.1f}  {targets or '-'}"
        )
        notes = [f"{k}={v:.4g}" for k, v in row.extra.items()]
        if notes:
            lines.append(f"{'':<9} {'':<12} {'':>7} {'':>4} " + "  ".join(notes))
    return "\n".join(lines)


LEGEND = """\
cadenza s: median of the warm runs (all but the first) of pipe.run(..., force=True), fresh home
  each; 1st run s: the first run of a newly defined pipeline (memos may be cold, as in a CLI run).
baseline s: the same functions called in graphlib.TopologicalSorter order in this process
  (sleep32: the ideal tasks*sleep/workers; thread_pool_s: a plain ThreadPoolExecutor).
us/task: (cadenza - baseline) / task instances (mapped items count one each).
targets: fan1000 <= 50 us/task inline, <= 500 us/task processes/2; sleep32 within 5% of ideal;
  fan100k <= 10 s and <= 1 GiB peak RSS (ru_maxrss of a child process that ran only fan100k)."""


def machine(quick: bool) -> dict[str, Any]:
    """What the numbers were measured on (benchmarks/cli.py prints the same)."""
    return {
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "platform": platform.platform(), "cadenza": cadenza.__version__, "quick": quick,
    }


def note(text: str, as_json: bool) -> None:
    print(text, file=sys.stderr if as_json else sys.stdout, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    parser.add_argument("--executor", choices=EXECUTORS, default=None,
                        help="run every chosen shape on this executor only")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, one repetition: a smoke test; targets are not judged")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per measurement")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_mapped(args.child, args.executor or "inline")
        return 0

    try:
        importlib.import_module("cadenza.executors.processes")
        have_processes = True
    except Exception as exc:  # any failure means: not ready yet
        have_processes = False
        note(f"note: processes executor not importable ({exc!r}); skipping it.", args.json)

    rows: list[Row] = []
    failed = False
    for shape in SHAPES if args.shape == "all" else (args.shape,):
        bench, executors, reps = BENCHES[shape]
        reps = args.repeat or (1 if args.quick else reps)
        for executor in (args.executor,) if args.executor else executors:
            if executor == "processes" and not have_processes:
                note(f"note: {shape} on processes skipped: executor not available.", args.json)
                continue
            if shape == "sleep32" and executor == "inline":
                note("note: sleep32 on inline skipped: it runs one task at a time.", args.json)
                continue
            try:
                rows.append(bench(executor, args.quick, reps))
            except Exception as exc:  # report it, keep measuring the rest
                failed = True
                note(f"FAILED {shape} on {executor}: {type(exc).__name__}: {exc}", args.json)

    report(machine(args.quick), rows, table(rows) + "\n" + LEGEND, args.json,
           "quick: sizes reduced and one repetition; targets are judged on full runs only."
           if args.quick else "")
    return 1 if failed else 0


def report(info: dict[str, Any], rows: list[Any], text: str, as_json: bool, quick: str) -> None:
    """Print ``rows`` (each with ``targets``) as JSON beside ``info``, or ``info`` as one line,
    then ``text`` (the table and its legend), then ``quick``'s note if there is one. Shared by
    benchmarks/cli.py."""
    if as_json:
        print(json.dumps({**info, "rows": [
            {**{k: v for k, v in vars(row).items() if k != "targets"},
             "targets": [{**vars(t), "verdict": t.verdict} for t in row.targets]}
            for row in rows
        ]}, indent=2))
        return
    print(", ".join(f"{k} {v}" for k, v in info.items() if k != "quick"))
    print(text)
    if quick:
        print(quick)


if __name__ == "__main__":
    sys.exit(main())
