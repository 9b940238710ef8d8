"""A task's code for its cache key: its source, what it uses from its module, and the project's
own modules it uses (engine/code.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cadenza._loader import load_pipeline
from cadenza.engine.cache import code_hash
from cadenza.engine.code import closure, project_file
from cadenza.pipeline import Pipeline

PIPELINE = '''
import json
import os.path

import {helpers} as helpers
from {helpers} import scale

from cadenza import Pipeline

LIMIT = 10
pipe = Pipeline("code")


def _double(x):
    return 2 * _inc(x)


def _inc(x):
    return x + 1


@pipe.task
def numbers():
    return [1, 2, 3]


@pipe.task
def doubled(numbers):
    return [_double(n) for n in numbers][:LIMIT]


@pipe.task
def scaled(numbers):
    return [scale(n) for n in numbers]


@pipe.task
def via_module(numbers):
    return helpers.total(numbers)


@pipe.task
def attribute_only(numbers):
    obj = json.JSONDecoder()
    return [os.path.join("a", str(n)) for n in numbers] + [str(obj.scan_once is not None)]
'''


def write_project(folder: Path, name: str) -> Path:
    """A pipeline file beside two project modules, ``name`` using ``name``_deep."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(f"""
        import {name}_deep

        def scale(n):
            return {name}_deep.FACTOR * n

        def total(numbers):
            return sum(numbers)
    """))
    (folder / f"{name}_deep.py").write_text("FACTOR = 3\n")
    (folder / "pipeline.py").write_text(PIPELINE.format(helpers=name))
    return folder / "pipeline.py"


def keys(pipe: Pipeline) -> dict[str, str]:
    return {name: code_hash(spec) for name, spec in pipe.tasks.items()}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    name = f"helpers_{request.node.name[5:25]}_{abs(hash(str(tmp_path))) % 10**6}"
    return write_project(tmp_path / "proj", name)


def test_a_same_module_helper_counts_by_source_and_is_followed(project: Path) -> None:
    before = keys(load_pipeline(str(project)))
    edit(project, "return x + 1", "return x + 21")  # _inc, reached through _double
    after = keys(load_pipeline(str(project)))
    assert after["doubled"] != before["doubled"]
    assert {k: v for k, v in after.items() if k != "doubled"} == {
        k: v for k, v in before.items() if k != "doubled"}


def test_a_constant_of_the_module_counts_by_value(project: Path) -> None:
    before = keys(load_pipeline(str(project)))
    edit(project, "LIMIT = 10", "LIMIT = 200")
    after = keys(load_pipeline(str(project)))
    assert after["doubled"] != before["doubled"]
    assert after["numbers"] == before["numbers"]


def test_a_project_module_counts_by_content_and_so_do_the_modules_it_uses(project: Path
                                                                        ) -> None:
    pipe = load_pipeline(str(project))
    name = next(f.stem for f in project.parent.glob("helpers_*.py") if "deep" not in f.stem)
    _, modules = closure(pipe.tasks["scaled"].fn)  # type: ignore[arg-type]
    assert list(modules) == [name, f"{name}_deep"]
    before = keys(pipe)
    edit(project.parent / f"{name}_deep.py", "FACTOR = 3", "FACTOR = 40")
    after = keys(pipe)  # the same loaded pipeline: the files are hashed again at each call
    assert after["scaled"] != before["scaled"]
    assert after["via_module"] != before["via_module"]  # `import helpers` reaches deep too
    assert after["numbers"] == before["numbers"] and after["doubled"] == before["doubled"]


def test_libraries_and_attribute_names_do_not_count(project: Path) -> None:
    pipe = load_pipeline(str(project))
    text, modules = closure(pipe.tasks["attribute_only"].fn)  # type: ignore[arg-type]
    assert modules == {}  # json and os.path are the standard library
    assert "def numbers" not in text  # `.scan_once`, `.join`: attributes, not globals
    import pandas

    assert project_file(json) is None and project_file(pandas) is None
    import cadenza.engine.run

    assert project_file(cadenza.engine.run) is None  # cadenza itself is not the project


def test_version_replaces_the_code(project: Path) -> None:
    pipe = Pipeline("v")

    @pipe.task(version="7")
    def one() -> int:
        return 1

    before = code_hash(pipe.tasks["one"])
    pipe2 = Pipeline("v")

    @pipe2.task(version="7")
    def one_changed() -> int:
        return 2

    assert code_hash(pipe2.tasks["one_changed"]) == before


def test_editing_a_helper_module_reruns_only_the_tasks_that_use_it(project: Path) -> None:
    """Through the command line, a process per run, as a user works."""
    home = project.parent / ".cadenza"

    def run() -> dict[str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "cadenza", "--home", str(home), "run", str(project),
             "-e", "inline", "--json"], capture_output=True, text=True, timeout=120,
            cwd=project.parent)
        assert done.returncode == 0, done.stderr
        return {name: t["state"] for name, t in json.loads(done.stdout)["tasks"].items()}

    assert set(run().values()) == {"success"}
    assert set(run().values()) == {"cached"}
    deep = next(project.parent.glob("helpers_*_deep.py"))
    edit(deep, "FACTOR = 3", "FACTOR = 50")
    assert run() == {"numbers": "cached", "doubled": "cached", "scaled": "success",
                     "via_module": "success", "attribute_only": "cached"}
