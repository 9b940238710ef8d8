"""What checking stored results costs: a fully cached fan1000 run, verified and not.

    python benchmarks/verify.py [--repeat 15] [--json]

fan1000 (1 -> 1000 -> 1 no-op tasks) runs once to fill its cache; then a cached run (every
task reused) is timed, alternately with cadenza's checks as shipped and with the one check a
cached run makes per task turned off: hashing each reused value kept in the store again
(``Workspace.holds_all``). Values over 16 KiB are checked when read instead, and a cached run
reads none. The difference per task is what verification costs; the target is under 5 us.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from cadenza.workspace import Workspace

sys.path.insert(0, str(Path(__file__).parent))
from run import build, fan  # benchmarks/run.py's fan1000, shared

TARGET_US = 5.0


def unverified(self: Workspace, outputs: Iterable[str]) -> dict[str, bool]:
    """``Workspace.holds_all`` without hashing values kept in the store: the baseline."""
    wanted = list(dict.fromkeys(outputs))
    stored = self.store.artifact_data(wanted)
    return {output: output in stored and (stored[output][1] is not None
                                          or self.artifacts.exists(output))
            for output in wanted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pipe, _ = build(fan(1000))
    tasks = len(pipe.tasks)
    shipped = Workspace.holds_all
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / ".cadenza"
        first = pipe.run(home=home)
        assert first.ok
        times: dict[str, list[float]] = {"verified": [], "unverified": []}
        for _ in range(args.repeat):
            for label, holds in (("verified", shipped), ("unverified", unverified)):
                Workspace.holds_all = holds  # type: ignore[method-assign]
                started = time.perf_counter()
                result = pipe.run(home=home)
                times[label].append(time.perf_counter() - started)
                assert {t.state for t in result.tasks.values()} == {"cached"}
        Workspace.holds_all = shipped  # type: ignore[method-assign]
    verified, baseline = (statistics.median(times[k]) for k in ("verified", "unverified"))
    per_task = (verified - baseline) / tasks * 1e6
    probe = [str(i).encode() for i in range(tasks)]
    started = time.perf_counter()
    for data in probe:
        hashlib.sha256(data).hexdigest()
    hash_us = (time.perf_counter() - started) / tasks * 1e6
    report = {"tasks": tasks, "repeat": args.repeat, "cached_run_verified_s": verified,
              "cached_run_unverified_s": baseline, "ratio": verified / baseline,
              "verification_us_per_task": per_task, "sha256_small_value_us": hash_us,
              "target_us": TARGET_US, "met": per_task < TARGET_US,
              "python": sys.version.split()[0]}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"fan1000 fully cached, {tasks} tasks, median of {args.repeat} (alternating):")
    print(f"  verified   {verified:.4f} s")
    print(f"  unverified {baseline:.4f} s   ratio {verified / baseline:.3f}")
    print(f"  verification: {per_task:.2f} us/task (one SHA-256 of a small value: "
          f"{hash_us:.2f} us); target < {TARGET_US} us: {'PASS' if report['met'] else 'MISS'}")


if __name__ == "__main__":
    main()
