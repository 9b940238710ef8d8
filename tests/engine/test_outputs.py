"""A reused result is only as good as its stored bytes and declared files (engine/outputs.py,
artifacts/integrity.py): edited files are restored, damaged artifacts are never used."""

from __future__ import annotations

import glob
import os
import pickle
import sqlite3
from pathlib import Path

from cadenza import Pipeline, ctx


def build() -> Pipeline:
    pipe = Pipeline("outputs", params={"k": 1})

    @pipe.task
    def numbers() -> list[int]:
        return list(range(40000))  # big: stored as a file in the artifact store

    @pipe.task(outputs={"out": "shared/out.txt"})
    def write(numbers: list[int], k: int) -> int:
        ctx.outputs["out"].write_text(f"k={k} n={len(numbers)}")
        return len(numbers) * k

    @pipe.task(cache=False)
    def read(write: int) -> str:
        return (ctx.root / "shared" / "out.txt").read_text()  # the file, not the value

    return pipe


def test_runs_with_other_params_never_leave_their_file_for_this_one(tmp_path: Path) -> None:
    """Two param sets write the same declared path; a cached run puts its own version back
    before anything downstream reads the file."""
    pipe, home = build(), tmp_path / ".cadenza"
    assert pipe.run(home=home, params={"k": 1}).output("read") == "k=1 n=40000"
    assert pipe.run(home=home, params={"k": 2}).output("read") == "k=2 n=40000"
    again = pipe.run(home=home, params={"k": 1})
    assert again.tasks["write"].state == "cached"
    assert again.output("read") == "k=1 n=40000"
    assert (tmp_path / "shared" / "out.txt").read_text() == "k=1 n=40000"


def test_a_replaced_value_is_never_used_and_the_next_run_makes_it_again(tmp_path: Path
                                                                       ) -> None:
    pipe, home = build(), tmp_path / ".cadenza"
    assert pipe.run(home=home).output("write") == 40000
    files = [f for f in glob.glob(str(home / "artifacts" / "*" / "*"))]
    biggest = max(files, key=os.path.getsize)
    Path(biggest).write_bytes(pickle.dumps(list(range(5))))  # still unpickles: c would be 5
    damaged = pipe.run(home=home, params={"k": 2})
    assert not damaged.ok
    assert damaged.tasks["numbers"].state == "cached"
    assert damaged.tasks["write"].state == "failed"
    error = damaged.tasks["write"].error or ""
    assert "is damaged" in error and Path(biggest).name[:16] in error
    healed = pipe.run(home=home, params={"k": 2})
    assert healed.tasks["numbers"].state == "success"  # made again, not trusted
    assert healed.output("write") == 80000


def test_a_damaged_value_kept_in_the_store_makes_its_task_run_again(tmp_path: Path) -> None:
    pipe = Pipeline("small")
    calls = tmp_path / "calls"

    @pipe.task
    def source() -> int:
        with open(calls, "a") as handle:
            handle.write("x")
        return 40000

    @pipe.task
    def double(source: int) -> int:
        return 2 * source

    home = tmp_path / ".cadenza"
    first = pipe.run(home=home)
    db = sqlite3.connect(home / "cadenza.db")
    db.execute("UPDATE artifacts SET data = ? WHERE hash = ?",
               (pickle.dumps(5), first.tasks["source"].output))
    db.commit()
    db.close()
    second = pipe.run(home=home)
    assert second.tasks["source"].state == "success"
    assert second.output("double") == 80000
    assert calls.read_text() == "xx"



def test_declared_paths_name_the_interval_so_parallel_runs_never_share_a_file(tmp_path: Path
                                                                             ) -> None:
    from cadenza.schedule.backfill import backfill

    pipe = Pipeline("daily", schedule="@daily", start="2026-01-01")

    @pipe.task(cache="interval",
               outputs={"day": "lake/date={interval_start:%Y-%m-%d}/part.txt"})
    def land(ctx) -> str:  # type: ignore[no-untyped-def]
        ctx.outputs["day"].write_text(str(ctx.interval_start))
        return str(ctx.outputs["day"].relative_to(ctx.root))

    @pipe.task(cache=False)
    def read(land: str, ctx) -> str:  # type: ignore[no-untyped-def]
        return (ctx.root / land).read_text()

    items = backfill(pipe, "2026-01-01", "2026-01-05", home=tmp_path / ".cadenza",
                     parallel=2, executor="threads")
    assert [i.state for i in items] == ["success"] * 4
    for day in ("01", "02", "03", "04"):
        text = (tmp_path / "lake" / f"date=2026-01-{day}" / "part.txt").read_text()
        assert text.startswith(f"2026-01-{day}")


def test_a_manual_run_and_params_fill_in_declared_paths(tmp_path: Path) -> None:
    pipe = Pipeline("named", params={"name": "a"})

    @pipe.task(outputs={"out": "out/{params[name]}-{interval_start}.txt"})
    def write(name: str) -> None:
        ctx.outputs["out"].write_text(name)

    assert pipe.run(home=tmp_path / ".cadenza", params={"name": "b"}).ok
    assert (tmp_path / "out" / "b-manual.txt").read_text() == "b"
    escape = pipe.run(home=tmp_path / ".cadenza", params={"name": "../../x"})
    assert escape.tasks["write"].state == "failed"
    assert "outside the project folder" in (escape.tasks["write"].error or "")
    assert not (tmp_path.parent / "x-manual.txt").exists()


def test_a_path_naming_an_unknown_field_is_refused_where_it_is_written() -> None:
    from cadenza.exceptions import InvalidOptionError

    pipe = Pipeline("bad")
    try:
        @pipe.task(outputs={"out": "out/{date}.txt"})
        def write() -> None: ...
    except InvalidOptionError as error:
        assert "{date}" in str(error) and "{interval_start}" in str(error)
    else:
        raise AssertionError("an unknown field in a declared path was accepted")
