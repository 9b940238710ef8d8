"""The web UI's pages on a PostgreSQL store beside the same pages on SQLite, in one run.

    python benchmarks/web_postgres.py [--dsn postgresql://...] [--reps 7] [--quick] [--json]

The SQLite store is benchmarks/web.py's (10,000 runs, 1,000,000 task instances; ``--quick``:
1,000 and 100,000), built or reused under ``--dir``. It is copied table by table into a new
database (COPY), so both stores hold the same rows, and every path benchmarks/web.py times is
timed on each, through the same app code, in this process. Without ``--dsn`` a throwaway
local cluster is started (cadenza.testing.postgres; durability off as in the tests); with it,
a new database is made on that server and dropped at the end. The
target: each path's median on PostgreSQL within 2x of SQLite's. Timings depend on the
machine: the exit code is 0 unless a request failed or a store could not be built.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from postgres import databases

from cadenza.store.postgres import PostgresStore
from web import TARGET_MS, Row, build, measure_all

RATIO = 2.0
"""A path's PostgreSQL median may be at most this many times its SQLite median."""
BOOLEANS = {"runs": {"cancel_requested"}, "pipelines": {"paused"}, "approvals": {"approved"}}
"""Columns SQLite keeps as 0/1 and PostgreSQL as booleans."""
COPY_BATCH = 50_000


def copy_store(sqlite_path: Path, dsn: str, log: Any) -> dict[str, int]:
    """Every row of the SQLite store at ``sqlite_path`` into the (empty) store at ``dsn``."""
    PostgresStore(dsn).close()  # the schema, as the store makes it
    import psycopg

    began = time.perf_counter()
    source = sqlite3.connect(sqlite_path)
    counts: dict[str, int] = {}
    try:
        with psycopg.connect(dsn) as target:
            tables = [name for (name,) in source.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                "'sqlite_%' AND name NOT IN ('meta', 'schema_migrations')")]
            for table in tables:
                theirs = {row[0] for row in target.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                    (table,))}
                if not theirs:
                    continue
                columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")
                           if row[1] in theirs]
                flags = [c in BOOLEANS.get(table, ()) for c in columns]
                names = ", ".join(f'"{c}"' for c in columns)
                rows = source.execute(f"SELECT {names} FROM {table}")
                counts[table] = 0
                with target.cursor() as cur, cur.copy(
                        f"COPY {table} ({names}) FROM STDIN") as copy:
                    while batch := rows.fetchmany(COPY_BATCH):
                        for row in batch:
                            copy.write_row([bool(v) if flag and v is not None else v
                                            for v, flag in zip(row, flags, strict=True)])
                        counts[table] += len(batch)
                print(f"  copied {counts[table]:,} {table} "
                      f"({time.perf_counter() - began:.0f} s)", file=log, flush=True)
            target.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), "
                           "(SELECT COALESCE(MAX(id), 1) FROM events))")
            target.execute("ANALYZE")
            target.commit()
    finally:
        source.close()
    return counts


def compare(sqlite_rows: list[Row], pg_rows: list[Row]) -> list[dict[str, Any]]:
    found = []
    for mine, theirs in zip(sqlite_rows, pg_rows, strict=True):
        ratio = theirs.median / mine.median if mine.median else float("inf")
        verdict = "-" if mine.kind == "baseline" else ("PASS" if ratio <= RATIO and
                                                        theirs.median <= TARGET_MS else "MISS")
        found.append({"path": mine.path, "kind": mine.kind, "sqlite_ms": mine.median,
                      "postgres_ms": theirs.median, "ratio": ratio, "verdict": verdict})
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", help="a PostgreSQL server to make the database on "
                                      "(default: a throwaway local cluster)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/cadenza-web-bench"),
                        help="where the SQLite stores are built and kept (as benchmarks/web.py)")
    parser.add_argument("--reps", type=int, default=7, help="timed requests per path and store")
    parser.add_argument("--quick", action="store_true",
                        help="1,000 runs (100,000 task instances): a smoke test")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--runs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    runs = args.runs or (1_000 if args.quick else 10_000)
    log = sys.stderr if args.json else sys.stdout
    folder = args.dir / f"runs{runs}-tasks{args.tasks}"
    try:
        built = build(folder, runs, args.tasks, log)
        with databases(args.dsn) as new_database:
            dsn = new_database()
            counts = copy_store(folder / ".cadenza" / "cadenza.db", dsn, log)
            sqlite_rows = measure_all(folder, built, args.reps)
            pg_rows = measure_all(folder, built, args.reps, db=dsn)
    except Exception as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    rows = compare(sqlite_rows, pg_rows)
    judged = [r for r in rows if r["kind"] != "baseline"]
    summary = {"runs": runs, "copied": counts, "reps": args.reps,
               "worst_ratio": max(r["ratio"] for r in judged),
               "median_ratio": statistics.median(r["ratio"] for r in judged),
               "misses": sum(r["verdict"] == "MISS" for r in judged)}
    if args.json:
        print(json.dumps({**summary, "rows": rows}, indent=2))
        return 0
    head = f"{'path':<64} {'SQLite ms':>9} {'PG ms':>8} {'x SQLite':>8}  target <= {RATIO:g}x"
    print(head)
    print("-" * len(head))
    for r in rows:
        path = r["path"] if len(r["path"]) <= 64 else r["path"][:61] + "..."
        print(f"{path:<64} {r['sqlite_ms']:>9.1f} {r['postgres_ms']:>8.1f} "
              f"{r['ratio']:>8.2f}  {r['verdict']}")
    print(f"{runs:,} runs; median ratio {summary['median_ratio']:.2f}x, worst "
          f"{summary['worst_ratio']:.2f}x, {summary['misses']} paths over {RATIO:g}x or "
          f"{TARGET_MS:g} ms (medians of {args.reps} requests after one warm-up, in process).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
