"""Time one scheduler tick for many pipelines on minute schedules, next to plain baselines.

    python benchmarks/scheduler.py [--pipelines 1000] [--ticks 20] [--quick] [--json]

Each variant builds N pipelines with one trivial task each, half in UTC and half in other IANA
zones. The ``cron`` variant uses ``schedule="* * * * *"`` and the ``every`` variant uses
``every="1m"``. A ``Scheduler`` then serves them from a fresh temporary home. Three cases are
timed with ``Scheduler.tick(now)``, with ``now`` given explicitly:

* steady: after one priming tick, one tick per following minute. Each of these ticks finds one
  new due interval per pipeline and creates N runs in one transaction, so the runs table grows
  by N rows per tick.
* idle: right after each steady tick, a second tick in the same minute, which finds nothing due.
* cold: the first tick of a new scheduler on an empty store, with catchup off. Each sample uses
  new pipelines and a new home. It creates N runs, one for each pipeline's newest finished
  interval.

The baselines run in the same process. They are ``Schedule.next_after`` for every schedule, and
N plain rows inserted with ``executemany`` in one transaction, first into a table that has only
a primary key and then into cadenza's own ``runs`` table with its indexes. Targets print PASS or
MISS. The exit code is 0 unless a tick errors or creates the wrong number of runs, because
timings depend on the machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cadenza
from cadenza import Pipeline
from cadenza.schedule.cron import Schedule
from cadenza.schedule.scheduler import Entry, Scheduler
from cadenza.store.sqlite import SqliteStore

TARGET_MS = 50.0
START = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
"""The priming tick's time: 30 s into a minute, in June, so no zone changes its offset."""
SAME_MINUTE = 20.0
"""Seconds after a steady tick at which the idle tick runs: still inside the same minute."""
OTHER_ZONES = ("America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Sydney")
VARIANTS: dict[str, dict[str, Any]] = {
    "cron": {"schedule": "* * * * *"},
    "every": {"every": "1m"},
}
COLD_SAMPLES = 5
"""Cold ticks per variant. Each needs new pipelines and a new home."""
RUN_COLUMNS = (
    "run_id, pipeline, state, params, created_at, target, started_at, ended_at, logical_date, "
    "interval_start, interval_end, runner_pid, heartbeat, cancel_requested"
)


def work() -> int:
    return 1


class TickError(Exception):
    """A tick created the wrong number of runs, so its timing would mean nothing."""


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    pipelines: int
    runs_per_tick: int
    samples: list[tuple[int, float]] = field(default_factory=list)
    """(runs in the store before the tick, tick time in ms), one per tick."""
    judged: bool = True

    @property
    def times(self) -> list[float]:
        return [ms for _, ms in self.samples]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        return percentile(self.times, 95)

    def verdict(self, value: float) -> str:
        if not self.judged:
            return "-"
        return "PASS" if value <= TARGET_MS else "MISS"

    def slope(self) -> float | None:
        """Linear fit of tick time against runs in the store: ms per 10,000 runs (None for
        fewer than 5 sizes, where noise would swamp it)."""
        sizes = [float(runs) for runs, _ in self.samples]
        if len(set(sizes)) < 5:
            return None
        return statistics.linear_regression(sizes, self.times).slope * 10_000


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with ``pct`` % of the values at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def entries(count: int, variant: str) -> list[Entry]:
    """``count`` pipelines ``p0``, ``p1``...: even ones in UTC, odd ones in OTHER_ZONES."""
    out = []
    for i in range(count):
        zone = "UTC" if i % 2 == 0 else OTHER_ZONES[i // 2 % len(OTHER_ZONES)]
        pipe = Pipeline(f"p{i}", timezone=zone, **VARIANTS[variant])
        pipe.task(work, name="work")
        out.append(Entry(pipe, "benchmarks/scheduler.py"))
    return out


@contextmanager
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="cadenza-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def time_ms(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """Milliseconds ``fn(*args)`` took, and what it returned."""
    gc.collect()  # collect garbage from setup before timing; the collector stays on
    started = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - started) * 1000, result


def timed_tick(sched: Scheduler, moment: datetime, expect: int) -> float:
    ms, created = time_ms(sched.tick, moment.timestamp())
    if len(created) != expect:
        raise TickError(f"tick at {moment:%H:%M:%S} created {len(created)} runs, not {expect}")
    return ms


def measure_ticks(count: int, variant: str, ticks: int, judged: bool) -> tuple[Case, Case]:
    """Prime one home with a tick, then time ``ticks`` steady ticks, each followed by an idle
    tick in the same minute."""
    steady = Case(f"{variant} steady", count, count, judged=judged)
    idle = Case(f"{variant} idle", count, 0, judged=judged)
    with scratch() as folder:
        sched = Scheduler(entries(count, variant), folder / ".cadenza")
        try:
            timed_tick(sched, START, count)
            for minute in range(1, ticks + 1):
                moment = START + timedelta(minutes=minute)
                steady.samples.append((count * minute, timed_tick(sched, moment, count)))
                later = moment + timedelta(seconds=SAME_MINUTE)
                idle.samples.append((count * (minute + 1), timed_tick(sched, later, 0)))
        finally:
            sched.close()
    return steady, idle


def measure_cold(count: int, variant: str, samples: int, judged: bool) -> Case:
    cold = Case(f"{variant} cold", count, count, judged=judged)
    for _ in range(samples):
        with scratch() as folder:
            sched = Scheduler(entries(count, variant), folder / ".cadenza")
            try:
                cold.samples.append((0, timed_tick(sched, START, count)))
            finally:
                sched.close()
    return cold


# -- baselines ------------------------------------------------------------------------------------


def baseline_next_after(count: int, variant: str, ticks: int) -> Case:
    """``next_after`` once for every schedule, at successive minutes, as steady ticks ask it."""
    case = Case(f"next_after x{count} ({variant})", count, 0, judged=False)
    schedules = [e.pipeline.schedule for e in entries(count, variant) if e.pipeline.schedule]
    minute = START.replace(second=0)
    for step in range(ticks + 1):
        moment = minute + timedelta(minutes=step)
        ms, _ = time_ms(next_after_all, schedules, moment)
        if step:  # the first call per schedule fills its memo, as the priming tick does
            case.samples.append((count * (step - 1), ms))
    return case


def next_after_all(schedules: list[Schedule], moment: datetime) -> None:
    for schedule in schedules:
        schedule.next_after(moment)


def fake_rows(count: int, step: int) -> list[tuple[Any, ...]]:
    """Rows shaped like the runs a steady tick creates."""
    start = START.replace(second=0) + timedelta(minutes=step)
    begin, end = start.isoformat(), (start + timedelta(minutes=1)).isoformat()
    stamp = f"{start:%Y%m%dT%H%M%S}"
    return [
        (f"p{i}-{stamp}-{i:06x}", f"p{i}", "queued", "{}", start.timestamp() + i * 1e-6,
         "benchmarks/scheduler.py", None, None, begin, begin, end, None, None, 0)
        for i in range(count)
    ]


def baseline_insert(count: int, ticks: int, schema: str) -> Case:
    """``count`` rows per transaction with ``executemany``, ``ticks`` times into one table.

    ``plain`` is a table with only a primary key. ``runs`` is cadenza's own table (made by
    ``SqliteStore``) with its indexes and the store's pragmas."""
    label = "primary key only" if schema == "plain" else "cadenza's runs"
    case = Case(f"insert {count} rows ({label})", count, count, judged=False)
    with scratch() as folder:
        path = folder / "baseline.db"
        SqliteStore(path).close()  # the same file settings (WAL) the store uses
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            table = "runs"
            if schema == "plain":
                table = "plain"
                columns = RUN_COLUMNS.replace("run_id", "run_id TEXT PRIMARY KEY", 1)
                db.execute(f"CREATE TABLE plain ({columns})")
            sql = (f"INSERT OR IGNORE INTO {table} ({RUN_COLUMNS}) "
                   f"VALUES ({', '.join('?' * 14)})")

            def insert(rows: list[tuple[Any, ...]]) -> None:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(sql, rows)
                db.execute("COMMIT")

            for step in range(ticks):
                ms, _ = time_ms(insert, fake_rows(count, step))
                case.samples.append((count * step, ms))
        finally:
            db.close()
    return case


# -- output ---------------------------------------------------------------------------------------


def growth(case: Case) -> str:
    """How ``case``'s tick time moved as the store grew: the medians of its first and last
    quarter of ticks (one tick each at least), and the fitted slope."""
    quarter = max(1, len(case.samples) // 4)
    ends = []
    for part in (case.samples[:quarter], case.samples[-quarter:]):
        runs = f"{part[0][0]:,}" if len(part) == 1 else f"{part[0][0]:,}-{part[-1][0]:,}"
        ends.append(f"{statistics.median(ms for _, ms in part):.1f} ms at {runs} runs")
    slope = case.slope()
    fit = f"; fit {slope:+.1f} ms per 10,000 runs" if slope is not None else ""
    return f"{case.name}: {ends[0]}, {ends[1]}{fit}"


def table(cases: list[Case], baselines: list[Case]) -> str:
    head = (f"{'case':<40} {'ticks':>5} {'runs/tick':>9} {'median ms':>9} {'p95 ms':>7} "
            f"{'max ms':>7}  target <= {TARGET_MS:g} ms (median, p95)")
    lines = [head, "-" * len(head)]
    for case in cases:
        lines.append(
            f"{case.name:<40} {len(case.samples):>5} {case.runs_per_tick:>9} "
            f"{case.median:>9.1f} {case.p95:>7.1f} {max(case.times):>7.1f}  "
            f"{case.verdict(case.median)}, {case.verdict(case.p95)}"
        )
    lines.append("baselines, same process")
    for case in baselines:
        lines.append(
            f"{case.name:<40} {len(case.samples):>5} {case.runs_per_tick:>9} "
            f"{case.median:>9.1f} {case.p95:>7.1f} {max(case.times):>7.1f}"
        )
    return "\n".join(lines)


LEGEND = """\
steady: a tick one minute after the last, which creates one run per pipeline in one transaction.
idle: a second tick in the same minute, which finds nothing due. cold: the first tick on an empty
store (new pipelines, catchup off), which creates one run per pipeline.
Times are Scheduler.tick(now) wall times; gc.collect() runs before each one, the collector stays
on. p95 is nearest-rank. The store grows by one run per pipeline per steady tick.
Baselines: next_after for every schedule at successive minutes, and one executemany of N rows in
one transaction, into a primary-key-only table and into cadenza's runs table (with its indexes)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipelines", type=int, default=None, help="pipelines (default 1000)")
    parser.add_argument("--ticks", type=int, default=None, help="steady ticks (default 20)")
    parser.add_argument("--quick", action="store_true",
                        help="50 pipelines, 3 ticks: a smoke test; targets are not judged")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    count = args.pipelines if args.pipelines is not None else (50 if args.quick else 1000)
    ticks = args.ticks if args.ticks is not None else (3 if args.quick else 20)
    if count < 1 or ticks < 1:
        parser.error(f"--pipelines {count} and --ticks {ticks} must both be 1 or more")
    judged = not args.quick
    log = sys.stderr if args.json else sys.stdout

    cases: list[Case] = []
    baselines: list[Case] = []
    try:
        for variant in VARIANTS:
            print(f"measuring {variant}: {count} pipelines, {ticks} ticks...", file=log,
                  flush=True)
            steady, idle = measure_ticks(count, variant, ticks, judged)
            cases += [steady, idle, measure_cold(count, variant, min(ticks, COLD_SAMPLES), judged)]
        baselines += [baseline_next_after(count, variant, ticks) for variant in VARIANTS]
        baselines += [baseline_insert(count, ticks, schema) for schema in ("plain", "runs")]
    except Exception as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1

    machine = {
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "platform": platform.platform(), "cadenza": cadenza.__version__,
        "cronsim": version("cronsim"), "sqlite": sqlite3.sqlite_version,
    }
    if args.json:
        print(json.dumps({
            **machine, "quick": args.quick, "pipelines": count, "ticks": ticks,
            "target_ms": TARGET_MS,
            "cases": [
                {"name": c.name, "runs_per_tick": c.runs_per_tick, "median_ms": c.median,
                 "p95_ms": c.p95, "max_ms": max(c.times), "slope_ms_per_10k_runs": c.slope(),
                 "verdict_median": c.verdict(c.median), "verdict_p95": c.verdict(c.p95),
                 "samples": [{"runs_before": r, "ms": ms} for r, ms in c.samples]}
                for c in cases
            ],
            "baselines": [
                {"name": c.name, "median_ms": c.median, "p95_ms": c.p95, "max_ms": max(c.times),
                 "samples": [{"runs_before": r, "ms": ms} for r, ms in c.samples]}
                for c in baselines
            ],
        }, indent=2))
        return 0
    print(", ".join(f"{k} {v}" for k, v in machine.items()))
    print(table(cases, baselines))
    for variant, next_after in zip(VARIANTS, baselines, strict=False):
        steady = cases[[c.name for c in cases].index(f"{variant} steady")]
        floor = next_after.median + baselines[-1].median
        print(f"{variant} steady over its floor (next_after + insert into runs, medians "
              f"{floor:.1f} ms): {steady.median - floor:+.1f} ms")
    print("as the runs table grows:")
    for case in [*cases, baselines[-1]]:
        if "cold" not in case.name:
            print(f"  {growth(case)}")
    print(LEGEND)
    if args.quick:
        print("quick: 50 pipelines and 3 ticks; targets are judged on full runs only.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
