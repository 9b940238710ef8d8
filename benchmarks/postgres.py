"""fan1000 inline on PostgresStore, beside SQLite's figure and the graphlib baseline.

    python benchmarks/postgres.py [--dsn postgresql://...] [--tasks 1000] [--reps 5] [--json]

Without ``--dsn`` it starts a throwaway local cluster (cadenza.testing.postgres: Debian's
initdb and pg_ctl, durability off as in the tests); each run gets a new database, as each
SQLite run gets a new home. The shapes, the baseline and the SQLite timing are
benchmarks/run.py's. Overhead per task is ``(cadenza - baseline) / instances``; the target is
<= 100 us/task on PostgreSQL. Timings depend on the machine: the exit code is 0 unless a run
failed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from run import (
    RunFailedError,
    Shape,
    build,
    fan,
    machine,
    run_baseline,
    run_cadenza,
    timed,
)

from cadenza import Pipeline
from cadenza.artifacts.local import LocalArtifactStore
from cadenza.engine.launch import run_pipeline
from cadenza.store.postgres import PostgresStore
from cadenza.testing.postgres import PostgresServer
from cadenza.workspace import Workspace

TARGET_US = 100.0


def run_postgres(pipe: Pipeline, shape: Shape, new_database: Callable[[], str]) -> float:
    """Time one inline run on a new database (its schema made before the clock starts)."""
    scratch = Path(tempfile.mkdtemp(prefix="cadenza-bench-"))
    store = PostgresStore(new_database())
    workspace = Workspace(scratch / ".cadenza", store,
                          LocalArtifactStore(scratch / ".cadenza" / "artifacts"))
    try:
        gc.collect()
        started = time.perf_counter()
        result = run_pipeline(pipe, workspace=workspace, executor="inline", force=True)
        elapsed = time.perf_counter() - started
        if not result.ok:
            raise RunFailedError(f"{shape.name} on PostgreSQL: {result!r}")
        if (got := result.output(shape.sink)) != shape.expected:
            raise RunFailedError(f"{shape.name}: sink gave {got!r}, not {shape.expected!r}")
        return elapsed
    finally:
        store.close()
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def databases(dsn: str | None) -> Iterator[Callable[[], str]]:
    """A maker of new databases: on the server ``dsn`` names, or on a throwaway cluster."""
    if dsn is None:
        with PostgresServer() as server:
            yield lambda: server.new_database(f"bench_{uuid.uuid4().hex[:12]}")
        return
    import psycopg

    made: list[str] = []

    def new() -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"'.encode())
        made.append(name)
        return str(psycopg.conninfo.make_conninfo(dsn, dbname=name))

    try:
        yield new
    finally:
        with psycopg.connect(dsn, autocommit=True) as db:
            for name in made:
                db.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="a server to make the databases on (default: a "
                        "throwaway local cluster)")
    parser.add_argument("--tasks", type=int, default=1000, help="fan width (default 1000)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    shape = fan(args.tasks)
    baseline = statistics.median(timed(lambda: run_baseline(shape), args.reps))
    pipe, _ = build(shape)
    sqlite = [run_cadenza(pipe, shape, "inline", 1) for _ in range(args.reps)]
    with databases(args.dsn) as new_database:
        postgres = [run_postgres(pipe, shape, new_database) for _ in range(args.reps)]
    figures = {}
    for name, runs in (("sqlite", sqlite), ("postgres", postgres)):
        median = statistics.median(runs[1:] or runs)  # the first run warms the memos
        figures[name] = {"median_s": median, "all_s": runs,
                         "overhead_us": (median - baseline) / shape.instances * 1e6}
    over = figures["postgres"]["overhead_us"]
    verdict = "PASS" if over <= TARGET_US else "MISS"
    if args.json:
        print(json.dumps({"shape": shape.name, "instances": shape.instances,
                          "baseline_s": baseline, **figures, "target_us": TARGET_US,
                          "verdict": verdict, "machine": machine(False)}, indent=2))
        return 0
    print(f"{shape.name} inline, {shape.instances} task instances, {args.reps} runs each "
          f"(median of all but the first); graphlib baseline {baseline:.4f} s")
    for name, row in figures.items():
        print(f"  {name:<9} {row['median_s']:8.4f} s  {row['overhead_us']:7.1f} us/task "
              "above the baseline")
    print(f"  target: PostgreSQL <= {TARGET_US:g} us/task: {over:.1f} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
