"""The `cadenza` command end to end, through Click's runner, on the fixture pipelines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza.cli import main

PIPELINES = Path(__file__).parents[1] / "pipelines"


def fixture(name: str) -> str:
    return str(PIPELINES / f"{name}.py")


def test_run_succeeds_then_everything_is_cached(cli) -> None:  # type: ignore[no-untyped-def]
    first = cli("run", fixture("good"), "-e", "inline")
    assert first.exit_code == 0, first.output
    assert "success" in first.output
    second = cli("run", fixture("good"), "--json")
    data = json.loads(second.output)
    assert second.exit_code == 0
    assert {t["state"] for t in data["tasks"].values()} == {"cached"}


def test_a_failed_run_exits_1_and_says_how_to_resume(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", fixture("failing"), "-e", "inline")
    assert result.exit_code == 1
    assert "resume:  cadenza run --resume failing-" in result.output
    assert "cadenza logs failing-" in result.output
    run_id = json.loads(cli("runs", "--json").output)[0]["run_id"]
    status = json.loads(cli("status", run_id, "--json").output)
    by_task = {t["task"]: t for t in status["tasks"]}
    assert by_task["explode"]["state"] == "failed"
    assert by_task["publish"]["state"] == "upstream_failed"
    assert by_task["side"]["state"] == "success"
    assert "ValueError: bad row" in by_task["explode"]["attempts"][0]["error"]
    logs = cli("logs", run_id, "explode")
    assert "ValueError" in logs.output  # the traceback went to the attempt's log
    again = cli("retry", run_id)
    assert again.exit_code == 1  # still failing, but retried in place
    status = json.loads(cli("status", run_id, "--json").output)
    explode = next(t for t in status["tasks"] if t["task"] == "explode")
    assert [a["attempt"] for a in explode["attempts"]] == [1, 2]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cyclic", "has a cycle: "),
        ("missing_input", "Did you mean"),
        ("raises_on_import", "raised"),
        ("no_pipeline", "defines no pipeline"),
        ("two_pipelines", "defines 2 pipelines (first, second)"),
        ("duplicate", "already has a task named"),
    ],
)
def test_broken_pipeline_files_exit_2_with_the_fix(cli, name: str, message: str) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["run", fixture(name)])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_named_pipeline_in_a_file_with_two(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", fixture("two_pipelines") + ":second", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pipeline"] == "second"
    missing = cli("show", fixture("two_pipelines") + ":third")
    assert missing.exit_code == 2 and "no pipeline named 'third'" in missing.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "treshold=1"], "has no param 'treshold'. Did you mean 'threshold'?"),
        (["--param", "threshold"], "write it as NAME=VALUE"),
        (["--param", "threshold=high"], "takes a float"),
        (["--only", "trian"], "has no such task"),
    ],
)
def test_bad_run_options_exit_2(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", fixture("good"), *args)
    assert result.exit_code == 2
    assert message in result.output


def test_missing_file_and_unknown_run(cli) -> None:  # type: ignore[no-untyped-def]
    assert "No pipeline file" in cli("run", "nowhere/pipe.py").output
    assert "No file or module 'no_such_module'" in cli("show", "no_such_module").output
    result = cli("status", "nope-123")
    assert result.exit_code == 2 and "No cadenza store is at" in result.output
    cli("init")
    result = cli("status", "nope-123")
    assert result.exit_code == 2 and "No run has the id 'nope-123'" in result.output


def test_plan_says_why(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "good.py"
    shutil.copy(fixture("good"), source)
    plan = json.loads(cli("plan", str(source), "--json").stdout)  # no store yet: a note on stderr
    assert {t["reason"] for t in plan["tasks"]} == {"never ran"}
    cli("run", str(source), "-q")
    plan = json.loads(cli("plan", str(source), "--json").output)
    assert [t["reason"] for t in plan["tasks"]] == ["cached"] * 4
    plan = json.loads(cli("plan", str(source), "--param", "threshold=0.8", "--json").output)
    assert {t["task"]: t["reason"] for t in plan["tasks"]}["train"] == "param 'threshold' changed"
    source.write_text(source.read_text().replace("if x is not None]", "if x is not None and x]"))
    plan = json.loads(cli("plan", str(source), "--json").output)
    reasons = {t["task"]: t["reason"] for t in plan["tasks"]}
    assert reasons["ingest"] == "cached" and reasons["clean"] == "code changed"
    assert reasons["train"] == "cached if 'clean' returns what it returned last time, else runs"
    forced = json.loads(cli("plan", str(source), "--force", "--json").output)
    assert {t["reason"] for t in forced["tasks"]} == {"forced"}


def test_show_formats() -> None:
    runner = CliRunner()
    text = runner.invoke(main, ["show", fixture("good")]).output
    assert "clean  <- ingest" in text
    mermaid = runner.invoke(main, ["show", fixture("good"), "-f", "mermaid"]).output
    assert mermaid.startswith("graph TD") and "ingest --> clean" in mermaid
    data = json.loads(runner.invoke(main, ["show", fixture("good"), "-f", "json"]).output)
    assert [t["name"] for t in data["tasks"]] == ["ingest", "clean", "train", "report"]
    markdown = runner.invoke(main, ["show", fixture("good"), "-f", "markdown"]).output
    assert markdown.startswith("# Orchestration plan: good")
    assert "```mermaid" in markdown and "| train | clean |" in markdown
    assert ".cadenza/logs/good/<run>/train/<attempt>.log" in markdown


def test_task_runs_one_task_from_an_input_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    values = tmp_path / "clean.json"
    values.write_text("[0.2, 0.9, 0.95]")
    result = cli("task", fixture("good"), "train", "--input", f"clean={values}",
                 "--param", "threshold=0.5")
    assert result.exit_code == 0, result.output
    assert "'share_above': 0.666" in result.output
    bad = cli("task", fixture("good"), "train", "--input", f"ingest={values}")
    assert bad.exit_code == 2 and "takes no input of that name" in bad.output


def test_cancel_of_a_run_whose_runner_is_gone(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    from cadenza.store.base import Batch, RunRecord, TaskInstanceRecord
    from cadenza.workspace import Workspace

    ws = Workspace.open(home)
    ws.store.apply(Batch(
        runs=[RunRecord("ghost-1", "ghost", "running", {}, 1.0, runner_pid=2**22 + 7)],
        task_instances=[TaskInstanceRecord("ghost-1", "t", -1, "running")],
    ))
    assert json.loads(cli("runs", "--json").output)[0]["state"] == "interrupted"
    result = cli("cancel", "ghost-1")
    assert "recorded as cancelled" in result.output
    assert ws.store.get_run("ghost-1").state == "cancelled"
    assert ws.store.task_instances("ghost-1")[0].state == "cancelled"


def test_every_command_is_found_where_the_lazy_table_says() -> None:
    """cli/_base.COMMANDS names each command's module; a command missing from it would be
    invisible, one named wrongly would fail on first use."""
    import importlib

    from cadenza.cli._base import COMMANDS

    for module in set(COMMANDS.values()):
        importlib.import_module(f"cadenza.cli.{module}")
    assert set(main.commands) == set(COMMANDS)
    for name, module in COMMANDS.items():
        assert main.commands[name].callback.__module__ == f"cadenza.cli.{module}"  # type: ignore[union-attr]


def test_cadenza_run_does_not_import_the_ui_the_scheduler_or_lineage(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; from cadenza.cli import main\n"
            "try: main(['--home', sys.argv[1], 'run', sys.argv[2], '-e', 'inline', '-q'])\n"
            "except SystemExit: pass\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('cadenza', 'fastapi',"
            " 'prometheus_client', 'cronsim', 'rich.table')))))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / ".cadenza"),
                           fixture("good")], capture_output=True, text=True, timeout=60)
    loaded = set(done.stdout.split())
    assert "cadenza.cli.run" in loaded, done.stderr
    for heavy in ("cadenza.cli.ui", "cadenza.web", "fastapi", "cadenza.schedule.scheduler",
                  "cronsim", "cadenza.lineage", "prometheus_client", "cadenza.cli.look",
                  "rich.table"):
        assert heavy not in loaded, heavy
