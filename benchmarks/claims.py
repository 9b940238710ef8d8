"""Claims on PostgreSQL: queued runs claimed by runner processes racing for them.

    python benchmarks/claims.py [--dsn postgresql://...] [--runs 2000] [--processes 3] [--json]
    python benchmarks/claims.py --unguarded     # the guard removed: must report duplicates

Each process lists the queued runs and claims them with ``PostgresStore.claim_run`` (the
compare-and-set under the run's row lock that bumps its epoch), starting at its own offset in
the list and reading it again every so often to skip runs others hold. It prints the runs it
won. The benchmark checks that each run was claimed exactly once, and that the store says the
same (one owner, epoch 1); it prints the time from the start signal to the last process done
and runs/s. The target is 2,000 runs by 3 processes in under 5 s.

``--contended``: every process tries every run, in the same order (no offsets, no
skipping), so that most claims are lost races. ``--unguarded`` claims without the guard: the
owner is read, and written if there was none, in two statements with no lock between them (a
check-then-set), contended. Runs are then claimed twice, and the check says so: the exit code
is 1, which proves the check can fail. Without ``--dsn`` a throwaway local cluster is started
(cadenza.testing.postgres). The exit code is 0 when every run was claimed once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TARGET_S = 5.0
"""Seconds for 2,000 runs by 3 processes."""
REREAD_EVERY = 50
"""Claims between two reads of the queued list."""

_CLAIMER = """
import json, os, sys, time
from cadenza.store.postgres import PostgresStore

dsn, me, processes, go, unguarded, contended = sys.argv[1], int(sys.argv[2]), \\
    int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1", sys.argv[6] == "1"
owner = f"bench-host-{me}:{os.getpid()}:claims"  # another host: judged by heartbeat only
store = PostgresStore(dsn)


def unguarded_claim(run_id):
    # the guard removed: read, then write, with nothing to stop another process in between
    held = store._read("SELECT owner FROM runs WHERE run_id = %s", (run_id,))[0][0]
    if held is not None:
        return None
    time.sleep(0.001)  # what any delay between the read and the write allows
    store._call(lambda db: db.execute(
        "UPDATE runs SET owner = %s, epoch = epoch + 1 WHERE run_id = %s", (owner, run_id)))
    return 1


claim = unguarded_claim if unguarded else (lambda run_id: store.claim_run(run_id, owner))
while not os.path.exists(go):
    time.sleep(0.001)
won, tried = [], 0
queued = [r.run_id for r in store.runs_in_states(["queued"]) if r.owner is None]
start = 0 if contended else len(queued) * me // processes
order = queued[start:] + queued[:start]
held = set()
for i, run_id in enumerate(order):
    if not contended and i and i % REREAD_EVERY == 0:
        held = {r.run_id for r in store.runs_in_states(["queued"]) if r.owner is not None}
    if run_id in held:
        continue
    tried += 1
    if claim(run_id) is not None:
        won.append(run_id)
store.close()
print(json.dumps({"won": won, "tried": tried}))
""".replace("REREAD_EVERY", str(REREAD_EVERY))


def race(dsn: str, runs: int, processes: int, unguarded: bool = False,
         contended: bool = False) -> dict[str, Any]:
    """Create ``runs`` queued runs in the (empty) database ``dsn``, let ``processes`` claim
    them at once, and check the outcome; a report."""
    from cadenza.store.base import RunRecord
    from cadenza.store.postgres import PostgresStore

    store = PostgresStore(dsn)
    try:
        ids = [f"claims-{i:05d}" for i in range(runs)]
        now = time.time()
        store.create_runs(RunRecord(run_id, "claims", "queued", {}, now + i)
                          for i, run_id in enumerate(ids))
        go = Path(tempfile.gettempdir()) / f"cadenza-claims-go-{uuid.uuid4().hex}"
        children = [subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, dsn, str(me), str(processes), str(go),
             "1" if unguarded else "0", "1" if contended or unguarded else "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ) for me in range(processes)]
        time.sleep(0.5)  # the children import cadenza and connect before the start
        started = time.perf_counter()
        go.touch()
        reports = []
        try:
            for child in children:
                out, err = child.communicate(timeout=600)
                if child.returncode != 0:
                    raise RuntimeError(f"a claiming process failed: {err.strip()}")
                reports.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            go.unlink(missing_ok=True)
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        elapsed = time.perf_counter() - started
        counts = Counter(run_id for report in reports for run_id in report["won"])
        twice = sorted(run_id for run_id, n in counts.items() if n > 1)
        never = sorted(set(ids) - set(counts))
        records = {r.run_id: r for r in store.runs_in_states(["queued"])}
        owners = Counter(r.owner for r in records.values())
        bad_epochs = sorted(r.run_id for r in records.values() if r.epoch != 1)
    finally:
        store.close()
    return {
        "runs": runs, "processes": processes, "unguarded": unguarded,
        "contended": contended or unguarded,
        "seconds": elapsed, "runs_per_s": runs / elapsed,
        "won": [len(report["won"]) for report in reports],
        "tried": [report["tried"] for report in reports],
        "claimed_twice": twice, "never_claimed": never, "epoch_not_1": bad_epochs,
        "owners": len(owners), "once_each": not (twice or never or bad_epochs),
    }


@contextlib.contextmanager
def database(dsn: str | None) -> Iterator[str]:
    """A new empty database: on the server ``dsn`` names (dropped after), or on a throwaway
    cluster."""
    sys.path.insert(0, str(Path(__file__).parent))
    from postgres import databases  # benchmarks/postgres.py

    with databases(dsn) as new_database:
        yield new_database()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="a server to make the database on (default: a "
                        "throwaway local cluster)")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--unguarded", action="store_true",
                        help="claim without the compare-and-set (duplicates are expected)")
    parser.add_argument("--contended", action="store_true",
                        help="every process tries every run, in the same order")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with database(args.dsn) as dsn:
        report = race(dsn, args.runs, args.processes, args.unguarded, args.contended)
    report["target_s"] = TARGET_S
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.runs} queued runs claimed by {args.processes} processes"
              f"{' WITHOUT the guard' if args.unguarded else ''}: {report['seconds']:.3f} s, "
              f"{report['runs_per_s']:.0f} runs/s (won {report['won']}, tried "
              f"{report['tried']}; target for 2000 by 3: < {TARGET_S:g} s)")
        if report["once_each"]:
            print("  each run was claimed exactly once (epoch 1, one owner)")
        else:
            print(f"  FAIL: claimed twice {len(report['claimed_twice'])}, never "
                  f"{len(report['never_claimed'])}, epoch not 1 {len(report['epoch_not_1'])} "
                  f"(first: {(report['claimed_twice'] or report['never_claimed'])[:5]})")
    return 0 if report["once_each"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
