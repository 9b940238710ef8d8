"""Which store a command uses is never a surprise: what only reads creates no store, `run` says
when its store is not the working directory's, and `cadenza init` makes one on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cadenza.cli import main

PIPELINES = Path(__file__).parents[1] / "pipelines"
GOOD = str(PIPELINES / "good.py")
OTHER_UID = 65534  # nobody


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder (it holds pyproject.toml), the working directory."""
    monkeypatch.delenv("CADENZA_HOME", raising=False)
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    monkeypatch.chdir(root)
    return root


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def cadenza(*args: str, cwd: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, in ``cwd``."""
    environ = {k: v for k, v in os.environ.items() if k != "CADENZA_HOME"}
    return subprocess.run([sys.executable, "-m", "cadenza", *args], cwd=cwd, text=True,
                          capture_output=True, env={**environ, **(env or {})}, timeout=120)


READERS = [
    ("runs",), ("runs", "--pipeline", "good"), ("status", "good-1"), ("status", "latest"),
    ("logs", "good-1"), ("artifacts", "ls"), ("artifacts", "show", "abcdef12"),
    ("lineage", "abcdef12"), ("cancel", "good-1"), ("approve", "good-1", "gate"),
    ("reject", "good-1", "gate", "--reason", "no"), ("artifacts", "tag", "good", "train"),
    ("artifacts", "rollback", "good", "train"), ("retry", "good-1"),
    ("run", "--resume", "good-1"), ("unpause", "good"),
]


@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_a_command_on_runs_that_finds_no_store_says_so_and_creates_none(
        project: Path, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert (f"No cadenza store was found in {str(project)!r} (the project root: it holds "
            "pyproject.toml)") in line or "No pipeline is named 'good'" in line
    assert "cadenza init" in line or "has no store" in line
    assert sorted(p.name for p in project.iterdir()) == ["pyproject.toml"]


def test_the_message_names_the_folders_searched(project: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project / "src" / "deep")
    result = cli("runs")
    assert result.exit_code == 2
    assert (f"No cadenza store was found from {str(project / 'src' / 'deep')!r} up to "
            f"{str(project)!r} (the project root: it holds pyproject.toml). Start one with "
            "`cadenza run PIPELINE` or `cadenza init`") in result.stderr
    missing = cli("--home", str(project / "typo"), "status", "latest")
    assert missing.exit_code == 2
    assert f"No cadenza store is at {str(project / 'typo')!r} (from --home)" in missing.stderr
    assert not (project / "typo").exists() and not (project / "src/deep/.cadenza").exists()


def test_plan_without_a_store_plans_a_first_run_and_creates_none(project: Path) -> None:
    result = cli("plan", GOOD)
    assert result.exit_code == 0, result.output
    assert "4 of 4 tasks would run." in result.stdout
    assert "note: no store was found in" in result.stderr
    assert sorted(p.name for p in project.iterdir()) == ["pyproject.toml"]


def test_readers_use_the_store_once_there_is_one(project: Path) -> None:
    assert cli("run", GOOD, "-e", "inline", "-q").exit_code == 0
    result = cli("runs")
    assert result.exit_code == 0 and "good-" in result.stdout and result.stderr == ""


def test_run_says_which_store_it_uses_when_it_is_above(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / ".git").mkdir()
    assert cadenza("init", cwd=root).returncode == 0
    below = cadenza("run", GOOD, "-e", "inline", "-q", cwd=root / "src")
    assert below.returncode == 0, below.stderr
    assert below.stderr.splitlines() == [
        f"using the store at {root / '.cadenza'} (found above the current folder)"]
    assert not (root / "src" / ".cadenza").exists()
    here = cadenza("run", GOOD, "-e", "inline", "-q", cwd=root)
    assert here.returncode == 0 and here.stderr == ""


def test_run_says_so_when_the_environment_picks_the_store(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    env = {"CADENZA_HOME": str(tmp_path / "state")}
    result = cadenza("run", GOOD, "-e", "inline", "-q", cwd=tmp_path / "work", env=env)
    assert result.returncode == 0, result.stderr
    assert f"using the store at {tmp_path / 'state'} (from $CADENZA_HOME)" in result.stderr
    given = cadenza("--home", str(tmp_path / "state"), "run", GOOD, "-e", "inline", "-q",
                    cwd=tmp_path / "work")
    assert given.returncode == 0 and given.stderr == ""  # what the user typed is no surprise


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="giving a folder to another user needs root (chown)")
def test_a_store_another_user_owns_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / ".cadenza").mkdir(parents=True)
    (shared / "me").mkdir()
    os.chown(shared / ".cadenza", OTHER_UID, -1)
    runs = cadenza("runs", cwd=shared / "me")
    assert runs.returncode == 2
    assert (f"{str(shared / '.cadenza')!r} belongs to user 'nobody' (uid {OTHER_UID}), not to "
            "you, so it is not used") in runs.stderr
    ran = cadenza("run", GOOD, "-e", "inline", "-q", cwd=shared / "me")
    assert ran.returncode == 0, ran.stderr
    assert f"using a new store at {shared / 'me' / '.cadenza'}" in ran.stderr
    assert list((shared / ".cadenza").iterdir()) == []
    forced = cadenza("--home", str(shared / ".cadenza"), "runs", cwd=shared / "me")
    assert forced.returncode == 0 and "no runs yet" in forced.stdout  # --home: used as asked


def test_init_makes_a_store_here_once(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cli("init")
    assert first.exit_code == 0
    assert first.stdout == f"made a store at {project / '.cadenza'}\n"
    assert (project / ".cadenza" / "cadenza.db").is_file()
    again = cli("init")
    assert again.stdout == f"a store is already at {project / '.cadenza'}; nothing changed\n"
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")
    inner = cli("init")
    assert inner.exit_code == 0 and (project / "sub" / ".cadenza").is_dir()
    assert f"now use this store, not {project / '.cadenza'}" in inner.stderr
    elsewhere = cli("--home", str(project / "state"), "init")
    assert elsewhere.stdout == f"made a store at {project / 'state'}\n"
