"""Mistyped names are errors: an unknown pipeline, task, gate or run exits 2, names what was
typed and suggests the closest known name; run ids take a unique prefix or `latest`."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cadenza.cli import main
from cadenza.workspace import Workspace

PIPELINES = Path(__file__).parents[1] / "pipelines"
GOOD = str(PIPELINES / "good.py")
FAILING = str(PIPELINES / "failing.py")
GATED = '''
from cadenza import Pipeline
pipe = Pipeline("gated")

@pipe.task
def train() -> float:
    return 0.91

pipe.gate("promote", after=["train"], message="Promote this model?")

@pipe.task(after=["promote"])
def deploy(train: float) -> str:
    return f"deployed {train}"
'''
DAILY = '''
from cadenza import Pipeline, ctx
pipe = Pipeline("daily", schedule="@daily", timezone="UTC", params={"label": "none", "n": 1})

@pipe.task(cache="interval")
def day(label: str, n: int) -> str:
    return f"{label} {n * 2} {ctx.interval_start}"
'''


def one_error(result: Result) -> str:
    """The one line a bad name gives, on stderr, with exit code 2."""
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def run_ids(cli, pipeline: str | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    args = ["runs", "--json"] + (["--pipeline", pipeline] if pipeline else [])
    return [r["run_id"] for r in json.loads(cli(*args).stdout)]


@pytest.mark.parametrize("command", ["pause", "unpause"])
def test_pausing_an_unknown_pipeline_is_an_error_with_a_suggestion(
        cli, home: Path, command: str) -> None:  # type: ignore[no-untyped-def]
    assert cli("run", GOOD, "-e", "inline", "-q").exit_code == 0
    line = one_error(cli(command, "goood"))
    assert "No pipeline is named 'goood'" in line and "Did you mean 'good'?" in line
    assert "Did you mean 'good'?" in one_error(cli(command, "GOOD"))
    assert "Known pipelines: good." in one_error(cli(command, "NOSUCH"))
    assert Workspace.open(home).store.paused() == set()
    assert cli("pause", "good").stdout == "good paused\n"
    assert cli("unpause", "good").stdout == "good unpaused\n"


def test_a_pipeline_the_project_lists_can_be_paused_before_it_ever_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CADENZA_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "daily.py").write_text(DAILY)
    (tmp_path / "cadenza.toml").write_text('pipelines = ["daily.py"]\n')
    result = CliRunner().invoke(main, ["pause", "daily"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == "daily paused\n"
    assert Workspace.open(tmp_path / ".cadenza").store.paused() == {"daily"}
    typo = CliRunner().invoke(main, ["pause", "dayly"], catch_exceptions=False)
    assert "Did you mean 'daily'?" in one_error(typo)


def test_unknown_pipelines_and_tasks_in_runs_and_artifacts(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("run", GOOD, "-e", "inline", "-q").exit_code == 0
    line = one_error(cli("runs", "--pipeline", "godo"))
    assert "No pipeline named 'godo' has runs in the store at" in line
    assert "Did you mean 'good'? Pipelines there: good." in line
    assert "Did you mean 'good'?" in one_error(cli("artifacts", "ls", "--pipeline", "godo"))
    line = one_error(cli("artifacts", "ls", "--pipeline", "good", "--task", "trian"))
    assert "Pipeline 'good' has no task 'trian'" in line and "Did you mean 'train'?" in line
    assert "Did you mean 'good'?" in one_error(cli("artifacts", "tag", "godo", "train"))
    assert "Did you mean 'train'?" in one_error(cli("artifacts", "tag", "good", "trian"))
    assert "Did you mean 'train'?" in one_error(cli("artifacts", "rollback", "good", "trian"))
    assert "it was never set" in one_error(cli("artifacts", "rollback", "good", "train"))
    tagged = cli("artifacts", "tag", "good", "train")
    assert tagged.exit_code == 0 and tagged.stdout.startswith("good.train active -> ")
    assert cli("runs", "--pipeline", "good").exit_code == 0


def test_a_gate_that_is_not_in_the_run_is_an_error_with_a_suggestion(
        cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "gated.py").write_text(GATED)
    assert cli("run", str(tmp_path / "gated.py"), "--no-wait", "-q").exit_code == 1
    line = one_error(cli("approve", "latest", "promte"))
    assert "has no task 'promte'. Did you mean 'promote'? Gates waiting now: promote." in line
    assert "not waiting for approval" in one_error(cli("approve", "latest", "deploy"))
    assert "Did you mean 'promote'?" in one_error(
        cli("reject", "latest", "PROMOTE", "--reason", "no"))
    assert "promote approved by" in cli("approve", "latest", "promote").stdout


def test_run_ids_take_a_unique_prefix_or_latest(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("run", GOOD, "-e", "inline", "-q").exit_code == 0
    assert cli("run", FAILING, "-e", "inline", "-q").exit_code == 1
    [good] = run_ids(cli, "good")
    [failing] = run_ids(cli, "failing")
    status = json.loads(cli("status", "latest", "--json").stdout)
    assert status["run_id"] == failing
    assert json.loads(cli("status", good[:-3], "--json").stdout)["run_id"] == good
    assert "ValueError" in cli("logs", failing[:-4], "explode").stdout
    retried = cli("retry", failing[:len("failing-") + 8], "--json")
    assert retried.exit_code == 1 and json.loads(retried.stdout)["run_id"] == failing
    resumed = cli("run", "--resume", "latest", "-q")
    assert resumed.exit_code == 1 and failing in resumed.stdout
    explode = next(t for t in json.loads(cli("status", failing, "--json").stdout)["tasks"]
                   if t["task"] == "explode")
    assert len(explode["attempts"]) == 3  # the run, the retry and the resume, all by prefix
    assert "is not running (it ended success)" in cli("cancel", good[:-2]).stdout


def test_a_run_id_that_matches_none_or_many_is_an_error(cli) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    line = one_error(cli("status", "latest"))
    assert "There is no latest run: the store at" in line and "has no runs yet" in line
    for _ in range(2):
        assert cli("run", GOOD, "-e", "inline", "-q", "--force").exit_code == 0
    first, second = run_ids(cli)
    line = one_error(cli("status", "good-"))
    assert line.startswith("error: 2 runs have ids starting 'good-': ")
    assert first in line and second in line and line.endswith("Give more of the id.")
    line = one_error(cli("logs", "zzz"))
    assert "No run has the id 'zzz', or an id starting with it, in the store at" in line
    assert "`latest` names the newest" in line
    typo = first[:-1] + ("0" if first[-1] != "0" else "1")
    assert f"Did you mean {first!r}?" in one_error(cli("cancel", typo))


def test_backfill_takes_params_and_p_means_param_everywhere(
        cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "daily.py").write_text(DAILY)
    result = cli("backfill", str(tmp_path / "daily.py"), "--start", "2026-10-01",
                 "--end", "2026-10-03", "-p", "label=hi", "--param", "n=21", "-j", "2",
                 "--json")
    assert result.exit_code == 0, result.output
    assert [row["action"] for row in json.loads(result.stdout)] == ["created"] * 2
    runs = json.loads(cli("runs", "--json").stdout)
    assert [r["params"] for r in runs] == [{"label": "hi", "n": 21}] * 2
    bad = one_error(cli("backfill", str(tmp_path / "daily.py"), "--start", "2026-10-05",
                        "--end", "2026-10-06", "-p", "lable=x"))
    assert "has no param 'lable'. Did you mean 'label'?" in bad

    def commands(group: click.Group) -> list[click.Command]:
        found: list[click.Command] = []
        for command in group.commands.values():
            found += commands(command) if isinstance(command, click.Group) else [command]
        return found

    with_p = {c.name: o.name for c in commands(main) for o in c.params
              if isinstance(o, click.Option) and "-p" in o.opts}
    assert set(with_p.values()) == {"params"}
    assert {"run", "plan", "task", "backfill"} <= set(with_p)
