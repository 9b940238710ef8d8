"""`cadenza` at a real pseudo-terminal: runs finish, output stays bounded, text stays literal.

These run the installed `cadenza` command on a pty with a window size, the way a user's shell
does, so Rich's live display is on. A command that hangs is killed at its deadline and fails."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from tests.cli._pty import Screen, run_at_terminal

ROOT = Path(__file__).parents[2]
FIXTURE = ROOT / "tests" / "pipelines" / "terminal.py"
CADENZA = [sys.executable, "-m", "cadenza"]
BOUND = 64_000  # bytes: a few screens of live progress and the summary, never megabytes
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def plain(screen: Screen) -> str:
    return ANSI.sub("", screen.text).replace("\r", "")


def cadenza(tmp_path: Path, *args: str, timeout: float = 60) -> Screen:
    return run_at_terminal([*CADENZA, "--home", str(tmp_path / ".cadenza"), *args],
                           cwd=tmp_path, timeout=timeout)


def test_a_task_that_sleeps_and_prints_finishes_with_a_summary(tmp_path: Path) -> None:
    screen = cadenza(tmp_path, "run", f"{FIXTURE}:slow", timeout=30)
    assert screen.code == 0, screen.text[-2000:]
    assert len(screen.output) < BOUND
    text = plain(screen)
    assert re.search(r"run slow-\S+ success in", text)
    assert "napped well" not in text  # the task's print went to its log, not the terminal
    logs = cadenza(tmp_path, "logs", _latest(tmp_path), "nap")
    assert "napped well" in plain(logs)


def _latest(tmp_path: Path) -> str:
    from cadenza.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / ".cadenza" / "cadenza.db")
    try:
        return store.list_runs(limit=1)[0].run_id
    finally:
        store.close()


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_every_executor_finishes_at_a_terminal(tmp_path: Path, executor: str) -> None:
    screen = cadenza(tmp_path, "run", f"{FIXTURE}:slow", "-e", executor, timeout=30)
    assert screen.code == 0, screen.text[-2000:]
    assert len(screen.output) < BOUND
    assert "success in" in plain(screen)


def test_the_churn_demo_forced_finishes_and_prints_its_report(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "churn", tmp_path / "churn")
    screen = cadenza(tmp_path, "run", "churn", "--approve", "promote_gate", "--force",
                     timeout=180)
    assert screen.code == 0, screen.text[-3000:]
    assert len(screen.output) < BOUND
    text = plain(screen)
    assert re.search(r"run churn-\S+ success in", text)
    assert "evaluate.report:" in text


def test_a_backfill_of_two_intervals_finishes_with_bounded_output(tmp_path: Path) -> None:
    screen = cadenza(tmp_path, "backfill", f"{FIXTURE}:daily", "--start", "2026-01-01",
                     "--end", "2026-01-03", timeout=60)
    assert screen.code in (0, 1), screen.text[-2000:]  # both runs end waiting at their gate
    assert len(screen.output) < BOUND
    text = plain(screen)
    assert text.count("waiting") >= 2
    assert "2026-01-01" in text and "2026-01-02" in text


def test_no_wait_at_a_gate_ends_the_run_waiting(tmp_path: Path) -> None:
    screen = cadenza(tmp_path, "run", f"{FIXTURE}:daily", "--no-wait", timeout=30)
    assert screen.code is not None, screen.text[-2000:]
    assert len(screen.output) < BOUND
    text = plain(screen)
    assert re.search(r"run daily-\S+ waiting in", text)
    assert "sign_off" in text


def test_errors_from_tasks_are_printed_literally(tmp_path: Path) -> None:
    screen = cadenza(tmp_path, "run", f"{FIXTURE}:markup", "-e", "inline", timeout=30)
    assert screen.code == 1
    text = plain(screen)
    assert "[columns]" in text and ":smile:" in text and "vm:1234:x" in text
    assert "\N{SMILING FACE WITH SMILING EYES}" not in text
    status = plain(cadenza(tmp_path, "status", _latest(tmp_path)))
    assert "[columns]" in status and ":smile:" in status
