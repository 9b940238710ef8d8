"""What `cadenza run`, `status`, `logs` and `retry` tell: data checks and gate decisions in
full, the gate a run waits at and how to approve it, summaries that scale, and prompt exits
after Ctrl-C or cancel while a task runs on in a thread."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli._pty import run_at_terminal
from tests.cli.test_terminal import ANSI

from cadenza.store.sqlite import SqliteStore

CHECKED = '''
from cadenza import Pipeline
from cadenza.checks import CheckResult

pipe = Pipeline("checked")
SCHEMA = ("schema differs: missing country (object); id is float64, expected int64; "
          "spend is object, expected float64; signup is object, expected datetime64[ns]")

@pipe.task
def clean() -> list:
    return [1, 2, 3]

@pipe.check("clean", severity="warn")
def drift(rows):
    return CheckResult(False, "PSI 0.31 on spend is above 0.2 [columns] :smile:")

@pipe.check("clean")
def schema(rows):
    return CheckResult(False, SCHEMA)

@pipe.task
def report(clean: list) -> int:
    return len(clean)
'''

GATED = '''
from cadenza import Pipeline

pipe = Pipeline("gated")

@pipe.task
def train() -> float:
    return 0.9

pipe.gate("promote", after=["train"], message="Ship the [new] model?")

@pipe.task(after=["promote"])
def deploy() -> str:
    return "shipped"
'''

WIDE = '''
from cadenza import Pipeline, Retry

pipe = Pipeline("wide")
TRIES = {}

@pipe.task
def source() -> int:
    return 1

def make(i):
    def leaf(source: int) -> int:
        TRIES[i] = TRIES.get(i, 0) + 1
        if i % 25 == 7:
            raise KeyError(f"no column number {i} in the [frame]")
        if i == 3 and TRIES[i] == 1:
            raise ConnectionError("reset by peer")
        return source + i
    return leaf

for i in range(N):
    pipe.task(name=f"leaf{i:03d}", retries=Retry(2, backoff=0))(make(i))
'''

SLEEPY = '''
import os, time
from pathlib import Path
from cadenza import Pipeline

pipe = Pipeline("sleepy")

@pipe.task(cache=False)
def nap() -> int:
    Path(os.environ["MARKER"]).write_text("started")
    for _ in range(300):
        print("tick", flush=True)
        time.sleep(0.1)
    return 1

@pipe.task
def after(nap: int) -> int:
    return nap
'''

SELF_INTERRUPTING = SLEEPY.replace(
    'Path(os.environ["MARKER"]).write_text("started")',
    'import signal; os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C at the terminal would')


def write(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return str(path)


def latest(cli) -> str:  # type: ignore[no-untyped-def]
    return str(json.loads(cli("runs", "--json").output)[0]["run_id"])


# -- what checks and gates found --------------------------------------------------------------


def test_failed_and_warned_checks_show_in_full_in_run_status_and_logs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = write(tmp_path, "checked", CHECKED)
    ran = cli("run", target, "-e", "inline")
    assert ran.exit_code == 1
    for text in (ran.output, cli("status", latest(cli)).output):
        flat = " ".join(text.split())
        assert "clean: check schema failed" in flat
        assert "signup is object, expected datetime64[ns]" in flat  # all 160 characters
        assert "clean: check drift warned" in flat
        assert "PSI 0.31 on spend is above 0.2 [columns] :smile:" in flat  # literal
    logs = cli("logs", latest(cli), "clean").output
    assert "no output was logged" not in logs
    assert "check schema failed" in logs and "expected datetime64[ns]" in logs
    assert "check drift warned" in logs and "PSI 0.31" in logs


def test_a_rejected_gate_shows_who_and_why_in_status(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = write(tmp_path, "gated", GATED)
    assert cli("run", target, "--no-wait").exit_code == 1
    run_id = latest(cli)
    cli("reject", run_id, "promote", "--by", "dee", "--reason", "worse than the [baseline]")
    before = " ".join(cli("status", run_id).output.split())  # decided, not yet acted on
    assert "promote rejected by dee: worse than the [baseline]" in before
    assert cli("retry", run_id, "--no-wait").exit_code == 1
    status = " ".join(cli("status", run_id).output.split())
    assert "promote failed: rejected by dee: worse than the [baseline]" in status
    data = json.loads(cli("status", run_id, "--json").output)
    gate = next(t for t in data["tasks"] if t["task"] == "promote")
    assert gate["state"] == "failed"
    assert gate["decision"]["by"] == "dee" and gate["decision"]["approved"] is False
    assert gate["decision"]["reason"] == "worse than the [baseline]"
    assert "rejected by dee" in cli("logs", run_id, "promote").output


def test_no_wait_names_the_gate_and_how_to_approve_and_resume(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = write(tmp_path, "gated", GATED)
    waiting = cli("run", target, "--no-wait")
    assert waiting.exit_code == 1
    run_id = latest(cli)
    assert "waiting at gate promote: Ship the [new] model?" in waiting.output
    approve = re.search(r"approve: (cadenza approve \S+ promote)", waiting.output)
    assert approve is not None and approve.group(1) == f"cadenza approve {run_id} promote"
    assert f"then:    cadenza run --resume {run_id}" in waiting.output
    assert cli(*approve.group(1).split()[1:]).exit_code == 0
    resumed = cli("retry", run_id, "--no-wait")
    assert resumed.exit_code == 0, resumed.output
    assert re.search(rf"run {run_id} success in", resumed.output)


# -- summaries that scale ---------------------------------------------------------------------


def test_past_a_screenful_the_summary_groups_and_lists_what_went_wrong(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = write(tmp_path, "wide", WIDE.replace("range(N)", "range(120)"))
    ran = cli("run", target, "-e", "inline")
    assert ran.exit_code == 1
    run_id = latest(cli)
    lines = ran.output.splitlines()
    assert len(lines) < 60  # not a terminal: about 40 rows, plus the bounded progress
    assert "121 tasks:  failed 5  success 116" in ran.output
    assert "leaf007 failed:" in ran.output and "no column number 7 in the [frame]" in ran.output
    assert "leaf003: 2 attempts, ended success" in ran.output
    assert "before: ConnectionError: reset by peer" in ran.output
    assert f"every task: cadenza status {run_id}" in ran.output
    assert "leaf050" not in ran.output  # a task that went well is counted, not listed
    data = json.loads(cli("run", "--resume", run_id, "--json").output)
    assert len(data["tasks"]) == 121  # --json lists every task, as before
    assert "leaf050" in cli("status", run_id).output


def test_progress_off_a_terminal_is_a_line_per_failure_not_per_task(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = write(tmp_path, "wide", WIDE.replace("range(N)", "range(60)"))
    ran = cli("run", target, "-e", "inline")
    head = ran.output.split(" tasks:")[0].splitlines()  # what printed before the summary
    assert head[0].startswith("run wide-")
    assert "  leaf007 failed" in head and "  leaf003 up_for_retry" in head
    assert not any(line.endswith(" success") for line in head)


def test_a_thousand_tasks_at_a_terminal_print_a_screen_not_a_thousand_rows(tmp_path: Path) -> None:
    target = write(tmp_path, "wide", WIDE.replace("range(N)", "range(1000)"))
    screen = run_at_terminal([sys.executable, "-m", "cadenza", "run", target, "-e", "inline"],
                             cwd=tmp_path, timeout=120, rows=30)
    assert screen.code == 1, screen.text[-2000:]
    assert len(screen.output) < 64_000
    text = ANSI.sub("", screen.text).replace("\r", "")
    assert "1001 tasks:  failed 40  success 961" in text
    assert "... and 30 more" in text and "every task: cadenza status wide-" in text


# -- Ctrl-C and cancel while a thread runs on ---------------------------------------------------


def _start_sleepy(tmp_path: Path, home: Path) -> tuple[subprocess.Popen[bytes], Path]:
    marker = tmp_path / "started"
    target = write(tmp_path, "sleepy", SLEEPY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cadenza", "--home", str(home), "run", target, "-e", "threads"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "MARKER": str(marker)},
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
        time.sleep(0.05)
    return proc, marker


def _state(home: Path) -> tuple[str, dict[str, str]]:
    store = SqliteStore(home / "cadenza.db")
    try:
        run = store.list_runs(limit=1)[0]
        return run.state, {ti.task: ti.state for ti in store.task_instances(run.run_id)}
    finally:
        store.close()


def test_ctrl_c_on_threads_exits_130_at_once(tmp_path: Path, home: Path) -> None:
    proc, _ = _start_sleepy(tmp_path, home)
    try:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        # the task sleeps 30 s: ending well before that means the runner did not wait for it
        out, _ = proc.communicate(timeout=15)
    finally:
        proc.kill()
    text = out.decode()
    assert proc.returncode == 130, text
    assert "interrupted: the run was cancelled" in text
    assert "task nap was still running in a thread" in text
    assert "tick" not in text  # the task's output stayed in its log
    assert _state(home) == ("cancelled", {"nap": "cancelled", "after": "cancelled"})


def test_cancel_on_threads_ends_the_runner_at_once(tmp_path: Path, home: Path) -> None:
    proc, _ = _start_sleepy(tmp_path, home)
    try:
        run_id = SqliteStore(home / "cadenza.db").list_runs(limit=1)[0].run_id
        cancel = subprocess.run([sys.executable, "-m", "cadenza", "--home", str(home), "cancel",
                                 run_id], capture_output=True, text=True, timeout=30)
        assert f"run {run_id} cancelled" in cancel.stdout, cancel.stdout + cancel.stderr
        out, _ = proc.communicate(timeout=15)
    finally:
        proc.kill()
    text = out.decode()
    assert proc.returncode == 1, text
    assert re.search(rf"run {run_id} cancelled in", text)
    assert "task nap was still running in a thread" in text and "tick" not in text
    assert _state(home)[0] == "cancelled"


def test_ctrl_c_at_a_terminal_clears_the_display_and_exits_130(tmp_path: Path) -> None:
    target = write(tmp_path, "sleepy", SELF_INTERRUPTING)
    screen = run_at_terminal([sys.executable, "-m", "cadenza", "run", target, "-e", "threads"],
                             cwd=tmp_path, timeout=20)
    text = ANSI.sub("", screen.text).replace("\r", "")
    assert screen.code == 130, text[-2000:]
    assert len(screen.output) < 64_000
    assert "interrupted: the run was cancelled" in text
    assert "task nap was still running in a thread" in text
    assert "tick" not in text
