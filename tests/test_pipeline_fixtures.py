"""The pipeline modules in tests/pipelines/: each imports (or fails to) the way it says."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from cadenza import CycleError, DuplicateTaskError, Pipeline, UnknownInputError
from cadenza.testing import run_in_memory

PIPELINES = Path(__file__).parent / "pipelines"


def load(name: str) -> ModuleType:
    """Import ``tests/pipelines/<name>.py`` from its path, under a name no other test uses."""
    module_name = f"_cadenza_fixture_{name}"
    spec = importlib.util.spec_from_file_location(module_name, PIPELINES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def pipelines_in(module: ModuleType) -> dict[str, Pipeline]:
    return {n: v for n, v in vars(module).items() if isinstance(v, Pipeline)}


@pytest.fixture(autouse=True)
def _forget_fixture_modules() -> Iterator[None]:
    yield
    for name in [m for m in sys.modules if m.startswith("_cadenza_fixture_")]:
        del sys.modules[name]


def test_every_fixture_is_tested() -> None:
    names = {p.stem for p in PIPELINES.glob("*.py")}
    assert names == {
        "counted", "cyclic", "duplicate", "failing", "good", "missing_input", "no_pipeline",
        "polish_demo", "raises_on_import", "terminal", "two_pipelines", "unserializable",
        "web_actions", "web_demo",
    }


def test_web_actions_asks_at_its_gate_and_sends_after_it() -> None:
    """tests/web/test_browser_actions.py's pipeline: extract -> report -> publish (a gate with a
    question) -> send."""
    pipe = load("web_actions").pipe
    assert pipe.graph().order == ("extract", "report", "publish", "send")
    assert pipe.tasks["publish"].message == "Publish the daily report to the team?"


def test_polish_demo_declares_its_tasks_out_of_dag_order() -> None:
    """tests/web/test_browser_polish.py's pipeline: a bool, a choice, a bounded int and a text
    param, and tasks declared neither in name nor in run order."""
    pipe = load("polish_demo").pipe
    assert set(pipe.params) == {"dry_run", "size", "rows", "note"}
    assert list(pipe.tasks) != sorted(pipe.tasks)


def test_terminal_fixtures_shapes() -> None:
    """tests/cli/test_terminal.py's pipelines: a slow printing task, a gated daily load."""
    module = load("terminal")
    assert module.slow.graph().order == ("nap", "after")
    assert module.daily.graph().order == ("load", "sign_off")
    assert module.markup.graph().order == ("boom",)


def test_web_demo_waits_at_its_gate_and_fails_when_too_strict(tmp_path: Path) -> None:
    """The web UI's fixture (tests/web): a gate, typed params, markup in a log and an error."""
    pipe = load("web_demo").pipe
    assert pipe.graph().order == ("extract", "validate", "approve_gate", "publish")
    waiting = run_in_memory(pipe, {"threshold": 0.5}, root=tmp_path)
    assert waiting.state == "waiting"
    failed = run_in_memory(pipe, {"threshold": 0.95}, root=tmp_path)
    assert failed.tasks["validate"].state == "failed"


def test_counted_notes_each_body_once(tmp_path: Path) -> None:
    """tests/cli/test_dask_cli.py's pipeline: each body writes one line to ``counts``."""
    counts = tmp_path / "counts"
    result = run_in_memory(load("counted").pipe, {"counts": str(counts)}, root=tmp_path)
    assert result.ok and result.output("join") == 6 + 3 + 60
    assert sorted(line.split()[0] for line in counts.read_text().splitlines()) == [
        "each1", "each2", "each3", "join", "left", "right", "start"]


# -- good ------------------------------------------------------------------------------------


def test_good() -> None:
    pipe = load("good").pipe
    assert pipe.name == "good"
    assert pipe.params == {"threshold": 0.5}
    graph = pipe.graph()
    assert graph.order == ("ingest", "clean", "train", "report")
    assert graph.nodes["clean"].downstream == ("train", "report")
    assert graph.nodes["train"].params == ("threshold",)


def test_good_runs(tmp_path: Path) -> None:
    pipe = load("good").pipe
    result = run_in_memory(pipe, root=tmp_path)
    assert result.ok, result
    assert {t.state for t in result.tasks.values()} == {"success"}
    assert result.output("clean") == [0.1, 0.4, 0.7, 0.9]
    assert result.output("train") == {"threshold": 0.5, "share_above": 0.5}
    assert result.output("report") == "4 values, mean 0.53"
    again = run_in_memory(pipe, {"threshold": 0.8}, root=tmp_path)
    assert again.output("train")["share_above"] == 0.25


# -- broken at build time --------------------------------------------------------------------


def test_cyclic_imports_and_fails_to_build() -> None:
    pipe = load("cyclic").pipe
    assert list(pipe.tasks) == ["start", "a", "b", "c"]
    with pytest.raises(CycleError) as excinfo:
        pipe.graph()
    cycle = excinfo.value.cycle
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[:-1]) == ["a", "b", "c"]
    assert " -> ".join(cycle) in str(excinfo.value)


def test_missing_input_imports_and_fails_to_build() -> None:
    pipe = load("missing_input").pipe
    with pytest.raises(UnknownInputError) as excinfo:
        pipe.validate()
    assert (excinfo.value.task, excinfo.value.name) == ("train", "clean_df")
    assert excinfo.value.suggestion == "clean"


# -- broken at import time -------------------------------------------------------------------


def test_duplicate_raises_at_import() -> None:
    with pytest.raises(DuplicateTaskError) as excinfo:
        load("duplicate")
    assert (excinfo.value.pipeline, excinfo.value.task) == ("duplicate", "clean")


def test_raises_on_import() -> None:
    with pytest.raises(RuntimeError, match="fails on purpose"):
        load("raises_on_import")


def test_no_pipeline() -> None:
    assert pipelines_in(load("no_pipeline")) == {}


def test_two_pipelines() -> None:
    found = pipelines_in(load("two_pipelines"))
    assert {n: p.name for n, p in found.items()} == {"first": "first", "second": "second"}
    for pipe in found.values():
        pipe.validate()


# -- broken at run time ----------------------------------------------------------------------


def test_failing_builds() -> None:
    pipe = load("failing").pipe
    assert pipe.graph().ancestors(["publish"]) == {"ingest", "explode", "summarise", "publish"}


def test_failing_run(tmp_path: Path) -> None:
    result = run_in_memory(load("failing").pipe, root=tmp_path)
    assert result.state == "failed"
    states = {name: task.state for name, task in result.tasks.items()}
    assert states == {
        "ingest": "success", "explode": "failed", "summarise": "upstream_failed",
        "publish": "upstream_failed", "side": "success",
    }
    assert "ValueError" in (result.tasks["explode"].error or "")


def test_unserializable_builds() -> None:
    assert load("unserializable").pipe.graph().order == ("numbers", "total")


def test_unserializable_run(tmp_path: Path) -> None:
    result = run_in_memory(load("unserializable").pipe, root=tmp_path)
    assert result.state == "failed"
    assert result.tasks["numbers"].state == "failed"
    assert "generator" in (result.tasks["numbers"].error or "")
    assert result.tasks["total"].state == "upstream_failed"
