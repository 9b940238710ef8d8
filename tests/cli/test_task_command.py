"""`cadenza task`: try one task alone, dry. It reads what it needs from files or earlier runs,
and records nothing: no run in `runs`, no new version of any artifact, no cache entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cadenza.cli import main
from cadenza.store.sqlite import SqliteStore

PIPELINE = '''
from cadenza import Pipeline
from cadenza.checks import CheckResult

pipe = Pipeline("shop", params={"threshold": 0.5})

@pipe.task
def ingest() -> list:
    return [0.1, 0.4, None, 0.7, 0.9]

@pipe.task
def clean(ingest: list) -> list:
    return [x for x in ingest if x is not None]

@pipe.task(outputs={"table": "out/share.txt"})
def train(clean: list, threshold: float, ctx) -> dict:
    above = [x for x in clean if x > threshold]
    print(f"{len(above)} of {len(clean)} above [threshold]")
    ctx.outputs["table"].parent.mkdir(exist_ok=True)
    ctx.outputs["table"].write_text(str(len(above)))
    return {"share_above": len(above) / len(clean)}

@pipe.check("train", severity="warn")
def plausible(result):
    return CheckResult(result["share_above"] < 0.9, "share_above is 0.9 or more")

@pipe.task
def report(clean: list) -> str:
    if not clean:
        raise ValueError("nothing to report on")
    return f"{len(clean)} values"

for i in range(8):
    pipe.task(name=f"side{i}")(lambda: 1)
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")  # the project root: the store search ends here
    (tmp_path / "shop.py").write_text(PIPELINE)
    return tmp_path


@pytest.fixture
def cli(project: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(project)
    monkeypatch.delenv("CADENZA_HOME", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def recorded(project: Path) -> tuple[int, int, int]:
    """Runs, versions of clean and of train, as the project's store has them."""
    store = SqliteStore(project / ".cadenza" / "cadenza.db")
    try:
        return (len(store.list_runs(limit=100)), len(store.versions("shop", "clean")),
                len(store.versions("shop", "train")))
    finally:
        store.close()


def test_with_every_input_given_it_needs_no_store_and_makes_none(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    (project / "clean.json").write_text("[0.2, 0.9, 0.95]")
    result = cli("task", "shop.py", "train", "-i", "clean=clean.json", "-p", "threshold=0.5")
    assert result.exit_code == 0, result.output
    assert "train success" in result.output and "(dry: nothing was recorded)" in result.output
    assert "input clean: from --input clean.json" in result.output
    assert "2 of 3 above [threshold]" in result.output  # what it printed, literally
    assert "'share_above': 0.666" in result.output
    assert (project / "out" / "share.txt").read_text() == "2"  # its own file, as in a run
    assert not (project / ".cadenza").exists()


def test_it_reads_earlier_outputs_and_adds_no_run_and_no_version(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("run", "shop.py", "-q").exit_code == 0
    first = json.loads(cli("runs", "--json").output)[0]["run_id"]
    before = recorded(project)
    assert before == (1, 1, 1)
    tried = cli("task", "shop.py", "train", "-p", "threshold=0.05")
    assert tried.exit_code == 0, tried.output
    assert f"input clean: from run {first}" in tried.output
    assert "check plausible warned" in tried.output
    (project / "other.json").write_text("[5.0, 6.0]")
    given = cli("task", "shop.py", "train", "-i", "clean=other.json")
    assert given.exit_code == 0, given.output
    assert recorded(project) == before  # not a run, and other.json is no version of clean
    runs = cli("runs").output
    assert runs.count("shop-") == 1
    assert cli("plan", "shop.py", "--json").exit_code == 0
    plan = json.loads(cli("plan", "shop.py", "--json").output)
    assert {t["reason"] for t in plan["tasks"]} == {"cached"}  # the cache is as the run left it


def test_json_says_what_it_read_printed_and_returned(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    (project / "clean.json").write_text("[0.2, 0.9, 0.95]")
    data = json.loads(cli("task", "shop.py", "train", "-i", "clean=clean.json", "--json").output)
    assert data["dry"] is True and data["state"] == "success"
    assert data["inputs"] == {"clean": "--input clean.json"}
    assert data["output"] == {"share_above": 2 / 3}
    assert "2 of 3 above [threshold]" in data["log"]
    assert data["files"]["table"].endswith("out/share.txt")


def test_a_failing_task_exits_1_with_its_error(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    (project / "empty.json").write_text("[]")
    result = cli("task", "shop.py", "report", "-i", "clean=empty.json")
    assert result.exit_code == 1
    assert "report failed" in result.output
    assert "ValueError: nothing to report on" in result.output


def test_a_missing_input_says_how_to_give_it(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("task", "shop.py", "train")
    assert result.exit_code == 2
    assert "needs the output of 'clean'" in result.output
    assert "--input clean=" in result.output
    assert not (project / ".cadenza").exists()
    typo = cli("task", "shop.py", "trian")
    assert typo.exit_code == 2 and "Did you mean 'train'?" in typo.output
