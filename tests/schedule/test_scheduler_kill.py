"""kill -9 a real `cadenza scheduler`, restart it: every interval still has exactly one run,
and the runs the kill interrupted finish after the restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from cadenza.store.sqlite import SqliteStore

PIPELINE = '''
import time
from datetime import datetime, timedelta, timezone
from cadenza import Pipeline, ctx

start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=6)
pipe = Pipeline("ticking", every="1s", start=start, catchup=True, max_active_runs=2)

@pipe.task(cache="interval")
def work():
    time.sleep(0.3)
    return ctx.interval_start
'''


def scheduler(tmp_path: Path) -> subprocess.Popen[bytes]:
    with open(tmp_path / "scheduler.out", "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cadenza", "--home", str(tmp_path / ".cadenza"),
             "scheduler", str(tmp_path / "ticking.py"), "--tick", "0.2", "--grace", "20",
             "--max-runs", "2"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


def test_kill_9_and_restart(tmp_path: Path) -> None:
    (tmp_path / "ticking.py").write_text(PIPELINE)
    first = scheduler(tmp_path)
    db = tmp_path / ".cadenza" / "cadenza.db"
    deadline = time.monotonic() + 30
    while True:  # wait until some runs have finished and others are under way
        assert first.poll() is None, (tmp_path / "scheduler.out").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.2)
        if db.exists():
            store = SqliteStore(db)
            states = Counter(r.state for r in store.list_runs("ticking", 1000))
            store.close()
            if states["success"] >= 2 and states["running"] >= 1:
                break
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    second = scheduler(tmp_path)
    time.sleep(3)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0, (tmp_path / "scheduler.out").read_text()

    store = SqliteStore(db)
    runs = store.list_runs("ticking", 1000)
    per_interval = Counter(r.interval_start for r in runs)
    assert per_interval and max(per_interval.values()) == 1
    starts = sorted(r.interval_start or "" for r in runs)
    # no gaps: one run per second from the schedule's start
    seconds = [int(time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))) for s in starts]
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))
    assert {r.state for r in runs} <= {"success", "queued"}
    assert Counter(r.state for r in runs)["success"] >= 8
    store.close()
