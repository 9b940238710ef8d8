"""Time ``cadenza`` as a user feels it: whole processes, beside baselines measured in the same run.

    python benchmarks/cli.py [--repeat 7] [--fan 1000] [--only NAME ...] [--pipe] [--quick] [--json]

Every measurement starts a new process and times it from start to exit, ``--repeat`` times,
after one untimed warm-up; the median counts. The baselines are ``python -c pass`` (the
interpreter's own start) and a bare ``graphlib`` loop over the fan DAG in a process of its own
(what any Python tool needs at least). Each cadenza row prints its time, its ratio to both, its
target and PASS or MISS. The exit code is 0 unless a command failed, because timings depend on
the machine.

- ``help``: ``cadenza --help``.
- ``one``: a pipeline of one task, ``cadenza run FILE -e inline``, a fresh store each time.
- ``fan``: 1 -> N -> 1 no-op tasks (N = ``--fan``), the same, default output; ``fan-q``: ``-q``.
- ``churn``: ``cadenza run churn --approve promote_gate`` in a temporary copy of
  examples/churn, fully cached (the warm-up fills the cache).

Output goes to a pseudo-terminal of 120 x 40 (``--pipe``: to a pipe), so the default output is
the one a user sees at a terminal; ``out KB`` is how much it printed. Python caches bytecode as
it does on a user's machine (see ``run_process``).
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from run import Target, machine, report

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("pass", "graphlib", "help", "one", "fan", "fan-q", "churn")
TARGETS = {"help": 0.15, "one": 0.12, "fan": 0.20, "churn": 0.5}
"""Seconds, whole process (issue 10). ``fan`` is judged at N = 1000 only."""
SIZE = (120, 40)


ONE = '''\
from cadenza import Pipeline

pipe = Pipeline("one")


@pipe.task
def hello() -> str:
    return "hello"
'''


def fan_source(n: int) -> str:
    """A pipeline file: ``source`` -> ``w0``..``w{n-1}`` -> ``sink``, every task a no-op."""
    return f'''\
from cadenza import Pipeline

pipe = Pipeline("fan{n}")


@pipe.task
def source() -> int:
    return 1


def noop(source: int) -> int:
    return source


for i in range({n}):
    pipe.task(noop, name=f"w{{i}}")


@pipe.task
def sink({", ".join(f"w{i}" for i in range(n))}):  # noqa: E501
    return {" + ".join(f"w{i}" for i in range(n))}
'''


def graphlib_source(n: int) -> str:
    """The baseline: the same DAG's calls in ``graphlib`` order, values in a dict."""
    return f'''\
from graphlib import TopologicalSorter

def noop(*args):
    return 1

graph = {{"source": ()}}
middle = [f"w{{i}}" for i in range({n})]
graph.update((name, ("source",)) for name in middle)
graph["sink"] = tuple(middle)
values = {{}}
order = TopologicalSorter(graph)
order.prepare()
while order.is_active():
    for node in order.get_ready():
        values[node] = noop(*(values[up] for up in graph[node]))
        order.done(node)
assert len(values) == {n + 2}
'''


# -- running a process --------------------------------------------------------------------------


class CommandFailedError(Exception):
    """A measured command exited non-zero: its time would mean nothing."""


def cadenza_command() -> list[str]:
    """The installed ``cadenza`` script beside this interpreter, as a user runs it."""
    script = Path(sys.executable).parent / "cadenza"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cadenza"]


def run_process(argv: list[str], cwd: Path, tty: bool) -> tuple[float, int]:
    """Run ``argv`` to its end; return (wall seconds, bytes it printed).

    Bytecode is cached as on a user's machine, where Python writes it on the first import:
    PYTHONDONTWRITEBYTECODE (set in some sandboxes and CI images) would make every process
    compile all of cadenza again. The cache goes to the scratch folder (PYTHONPYCACHEPREFIX),
    not into the source tree, and each measurement's warm-up fills it."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(SIZE[0]),
           "LINES": str(SIZE[1]), "PYTHONPYCACHEPREFIX": str(cwd / "pycache")}
    for name in ("NO_COLOR", "FORCE_COLOR", "CADENZA_HOME", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    if not tty:
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise CommandFailedError(_failure(argv, done.returncode, done.stdout + done.stderr))
        return elapsed, len(done.stdout) + len(done.stderr)

    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    output = bytearray()
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=follower, stdout=follower,
                               stderr=follower, close_fds=True, start_new_session=True)
    os.close(follower)
    try:
        while True:  # until the child closes the terminal: EIO on Linux, b"" elsewhere
            try:
                chunk = os.read(leader, 65536)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            output += chunk
        code = process.wait()
        elapsed = time.perf_counter() - started
    finally:
        os.close(leader)
    if code != 0:
        raise CommandFailedError(_failure(argv, code, bytes(output)))
    return elapsed, len(output)


def _failure(argv: list[str], code: int, output: bytes) -> str:
    tail = output.decode(errors="replace")[-2000:]
    return f"{' '.join(argv)} exited with {code}:\n{tail}"


# -- the measurements ---------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    command: str
    reps: int
    median_s: float
    min_s: float
    """The fastest repetition: the least disturbed by other processes on a busy machine."""
    all_s: list[float]
    output_kb: float
    fresh: bool
    """A fresh store for every repetition."""
    vs_pass: float = 0.0
    vs_graphlib: float = 0.0
    targets: list[Target] = field(default_factory=list)


def measure(name: str, argv: list[str], cwd: Path, reps: int, tty: bool,
            fresh: Path | None = None) -> Row:
    """One untimed warm-up, then ``reps`` timed runs; ``fresh``: a store removed before each."""
    samples: list[float] = []
    printed = 0
    for rep in range(reps + 1):
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        elapsed, printed = run_process(argv, cwd, tty)
        if rep:
            samples.append(elapsed)
    shown = " ".join(Path(a).name if a == argv[0] else a for a in argv)
    return Row(name, shown, reps, statistics.median(samples), min(samples), samples,
               printed / 1024, fresh is not None)


def bench(names: list[str], reps: int, fan: int, tty: bool, scratch: Path) -> list[Row]:
    python, cadenza = [sys.executable], cadenza_command()
    home = scratch / ".cadenza"  # every command runs in ``scratch``: the store is beside it
    (scratch / "one.py").write_text(ONE)
    (scratch / f"fan{fan}.py").write_text(fan_source(fan))
    (scratch / "graphlib_fan.py").write_text(graphlib_source(fan))
    store = ["--home", ".cadenza"]
    commands: dict[str, tuple[list[str], Path | None]] = {
        "pass": ([*python, "-c", "pass"], None),
        "graphlib": ([*python, "graphlib_fan.py"], None),
        "help": ([*cadenza, "--help"], None),
        "one": ([*cadenza, *store, "run", "one.py", "-e", "inline"], home),
        "fan": ([*cadenza, *store, "run", f"fan{fan}.py", "-e", "inline"], home),
        "fan-q": ([*cadenza, *store, "run", f"fan{fan}.py", "-e", "inline", "-q"], home),
        "churn": ([*cadenza, *store, "run", "churn", "--approve", "promote_gate"], None),
    }
    if "churn" in names:  # a copy: the demo writes its data and reports beside itself
        shutil.copytree(ROOT / "examples" / "churn", scratch / "churn",
                        ignore=shutil.ignore_patterns("__pycache__", ".cadenza"))
    rows = []
    for name in NAMES:  # the baselines first: every ratio needs them
        if name in names or name in ("pass", "graphlib"):
            argv, fresh = commands[name]
            if name == "churn":
                shutil.rmtree(home, ignore_errors=True)  # the warm-up fills its cache
            rows.append(measure(name, argv, scratch, reps, tty, fresh))
    by_name = {row.name: row for row in rows}
    for row in rows:
        row.vs_pass = row.median_s / by_name["pass"].median_s
        row.vs_graphlib = row.median_s / by_name["graphlib"].median_s
        limit = TARGETS.get(row.name)
        if limit is not None:
            judged = row.name != "fan" or fan == 1000
            row.targets.append(Target("whole process", limit, row.median_s, "s", judged))
    return rows


# -- output ---------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = (f"{'what':<9} {'median s':>9} {'min s':>6} {'x pass':>7} {'x graphlib':>10} "
            f"{'out KB':>7}  {'target':<27} command")
    lines = [head, "-" * (len(head) + 40)]
    for row in rows:
        target = ", ".join(f"<= {t.limit:g} s {t.verdict}" for t in row.targets) or "-"
        fresh = " (fresh store each)" if row.fresh else ""
        lines.append(
            f"{row.name:<9} {row.median_s:>9.3f} {row.min_s:>6.3f} {row.vs_pass:>7.1f} "
            f"{row.vs_graphlib:>10.1f} {row.output_kb:>7.1f}  {target:<27} {row.command}{fresh}"
        )
    return "\n".join(lines)


LEGEND = """\
median s: wall time of the whole process, start to exit, median of the timed repetitions
  (after one untimed warm-up); min s: the fastest of them. Ratios and targets use the median.
  x pass / x graphlib: that time over the baselines' (python -c
  pass; a bare graphlib loop over the fan DAG, as a process of its own). out KB: what the
  command printed (to a 120x40 pseudo-terminal unless --pipe).
targets (issue 10): cadenza --help <= 0.15 s; one task <= 0.12 s; fan1000 default output
  <= 0.20 s; a fully cached churn run <= 0.5 s. fan -q has no target."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=None, help="timed runs each (default 7)")
    parser.add_argument("--fan", type=int, default=None, help="middle tasks of fan (1000)")
    parser.add_argument("--only", action="append", choices=NAMES, default=None,
                        help="measure only this (repeatable); the baselines always run")
    parser.add_argument("--pipe", action="store_true",
                        help="print to a pipe, not a pseudo-terminal")
    parser.add_argument("--quick", action="store_true",
                        help="fan 20, one repetition: a smoke test; targets are not judged")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    reps = args.repeat or (1 if args.quick else 7)
    fan = args.fan or (20 if args.quick else 1000)
    tty = not args.pipe and os.name == "posix"
    names = args.only or list(NAMES)

    scratch = Path(tempfile.mkdtemp(prefix="cadenza-cli-bench-"))
    try:
        rows = bench(names, reps, fan, tty, scratch)
    except CommandFailedError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.quick:
        for row in rows:
            for target in row.targets:
                target.judged = False
    report({**machine(args.quick), "fan": fan, "tty": tty}, rows, table(rows) + "\n" + LEGEND,
           args.json, "quick: fan 20 and one repetition; targets are judged on full runs only."
           if args.quick else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
