"""`cadenza plan` reasons, one per cause: never ran, code, param, input, output missing,
forced, cache=False, selection."""

from __future__ import annotations

from pathlib import Path

from cadenza import Pipeline
from cadenza.engine.plan import plan_pipeline
from cadenza.workspace import Workspace


def build(version: str = "1") -> Pipeline:
    pipe = Pipeline("planned", params={"k": 1})

    @pipe.task(version=version)
    def source() -> list[int]:
        return [1, 2]

    @pipe.task(outputs={"out": "out.txt"})
    def middle(source: list[int], k: int, ctx) -> int:  # type: ignore[no-untyped-def]
        ctx.outputs["out"].write_text("z" * 20000)
        return sum(source) * k

    @pipe.task(cache=False)
    def always(middle: int) -> int:
        return middle

    return pipe


def reasons(pipe: Pipeline, home: Path, params: dict[str, int] | None = None, **kw):  # type: ignore[no-untyped-def]
    ws = Workspace.open(home)
    try:
        steps = plan_pipeline(pipe, ws, {**pipe.params, **(params or {})}, **kw)
    finally:
        ws.close()
    return {s.task: (s.runs, s.reason) for s in steps}


def test_reasons(home: Path) -> None:
    pipe = build()
    assert reasons(pipe, home)["source"] == (True, "never ran")
    first = pipe.run(home=home)
    assert reasons(pipe, home) == {
        "source": (False, "cached"), "middle": (False, "cached"),
        "always": (True, "cache=False: always runs"),
    }
    assert reasons(pipe, home, {"k": 2})["middle"] == (True, "param 'k' changed")
    assert reasons(build("2"), home)["source"] == (True, "code changed")
    assert reasons(pipe, home, force=True)["middle"] == (True, "forced")
    picked = reasons(pipe, home, selected={"always"})
    assert picked["middle"] == (False, "not selected: uses its latest stored output")
    assert picked["source"] == (False, "not selected: skipped")
    ws = Workspace.open(home)
    ws.artifacts.delete(first.tasks["middle"].files["out"])
    ws.close()
    assert reasons(pipe, home)["middle"] == (
        True, "output missing: output 'out': its stored copy is gone")


def test_a_declared_output_edited_or_deleted_is_restored_and_plan_says_so(home: Path) -> None:
    pipe = build()
    first = pipe.run(home=home)
    out = home.parent / "out.txt"
    out.write_text("edited by hand")
    assert reasons(pipe, home)["middle"] == (
        False, "cached; output 'out' changed on disk, will be restored")
    second = pipe.run(home=home)
    assert second.tasks["middle"].state == "cached"
    assert out.read_text() == "z" * 20000  # put back before anything downstream read it
    out.unlink()
    assert reasons(pipe, home)["middle"] == (
        False, "cached; output 'out' missing, will be restored")
    assert pipe.run(home=home).tasks["middle"].state == "cached"
    assert out.read_text() == "z" * 20000
    assert first.tasks["middle"].files == second.tasks["middle"].files


def test_input_changed_and_output_missing(home: Path) -> None:
    pipe = build()
    pipe.run(home=home)
    build("2").run(home=home, only=["source"])  # source's code and output move on alone
    # `source` returns the same list, so its output hash is equal: middle stays cached.
    assert reasons(build("2"), home)["middle"] == (False, "cached")

    other = Pipeline("planned", params={"k": 1})

    @other.task(version="3")
    def source() -> list[int]:
        return [5]

    other.tasks["middle"] = pipe.tasks["middle"]
    other.tasks["always"] = pipe.tasks["always"]
    other.run(home=home, only=["source"])
    assert reasons(other, home)["middle"] == (True, "input 'source' changed")
