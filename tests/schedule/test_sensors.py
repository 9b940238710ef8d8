"""Sensors and asset triggers, ticked with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza import FileSensor, Param, Pipeline, SensorResult, on_new_version
from cadenza.exceptions import InvalidOptionError
from cadenza.schedule.scheduler import Entry, Scheduler
from cadenza.schedule.sensors import cursor_key
from cadenza.workspace import Workspace

T = 1_800_000_000.0


def queued(home: Path, pipeline: str) -> list[dict[str, object]]:
    ws = Workspace.open(home)
    try:
        return [r.params for r in ws.store.list_runs(pipeline, 100)]
    finally:
        ws.close()


def test_file_sensor_fires_once_per_new_or_changed_file(home: Path) -> None:
    landing = home.parent / "landing"
    landing.mkdir(parents=True)
    pipe = Pipeline("ingest", params={"files": []},
                    sensors=[FileSensor("landing/*.csv", every="10s")])

    @pipe.task
    def load(files: list[str]) -> int:
        return len(files)

    sched = Scheduler([Entry(pipe, "x")], home)
    assert sched.tick(T) == []
    (landing / "a.csv").write_text("1")
    (landing / "ignored.txt").write_text("x")
    assert sched.tick(T + 5) == []  # not due yet: checked every 10 s
    assert len(sched.tick(T + 10)) == 1
    assert queued(home, "ingest") == [{"files": ["landing/a.csv"]}]
    assert sched.tick(T + 20) == []  # nothing new
    (landing / "b.csv").write_text("2")
    assert len(sched.tick(T + 30)) == 1
    assert queued(home, "ingest")[0] == {"files": ["landing/b.csv"]}


def test_a_function_sensor_keeps_its_cursor(home: Path) -> None:
    pipe = Pipeline("counter", params={"n": 0})
    answers: list[object] = []

    @pipe.sensor(every="1s")
    def ticker(cursor: int | None) -> SensorResult | None:
        answers.append(cursor)
        n = (cursor or 0) + 1
        return SensorResult(True, {"n": n}, n) if n <= 2 else None

    @pipe.task
    def use(n: int) -> int:
        return n

    sched = Scheduler([Entry(pipe, "x")], home)
    for i in range(4):
        sched.tick(T + i)
    assert answers == [None, 1, 2, 2]
    assert sorted(p["n"] for p in queued(home, "counter")) == [1, 2]  # type: ignore[type-var]


def test_a_crash_before_the_cursor_is_saved_makes_no_duplicate(home: Path) -> None:
    pipe = Pipeline("once", sensors=[FileSensor("in/*")])

    @pipe.task
    def t() -> None: ...

    (home.parent / "in").mkdir(parents=True)
    (home.parent / "in" / "f").write_text("x")
    sched = Scheduler([Entry(pipe, "x")], home)
    assert len(sched.tick(T)) == 1
    sensor = pipe.sensors[0]
    sched.workspace.store.set_cursor(cursor_key("once", sensor), None)  # the lost write
    restarted = Scheduler([Entry(pipe, "x")], home)
    assert restarted.tick(T + 60) == []
    assert len(queued(home, "once")) == 1


def test_a_sensor_that_raises_is_recorded_and_others_go_on(home: Path) -> None:
    broken = Pipeline("broken")

    @broken.sensor
    def flaky() -> bool:
        raise ConnectionError("bucket unreachable")

    @broken.task
    def t() -> None: ...

    fine = Pipeline("fine")
    fine.sensor(lambda: True, name="always")

    @fine.task
    def u() -> None: ...

    sched = Scheduler([Entry(broken, "b"), Entry(fine, "f")], home)
    created = sched.tick(T)
    assert [c.split("-")[0] for c in created] == ["fine"]
    assert sched.errors == ["broken: sensor 'flaky' raised ConnectionError: bucket unreachable"]


def test_new_version_of_another_pipelines_artifact_triggers_a_run(home: Path) -> None:
    value = {"v": 1}
    upstream = Pipeline("features")

    @upstream.task(cache=False)
    def table() -> dict[str, int]:
        return dict(value)

    downstream = Pipeline("train", triggers=[on_new_version("features.table", every="1s")])

    @downstream.task
    def fit() -> None: ...

    sched = Scheduler([Entry(downstream, "d")], home)
    assert sched.tick(T) == []  # no version yet
    upstream.run(home=home)
    assert len(sched.tick(T + 1)) == 1
    assert sched.tick(T + 2) == []
    upstream.run(home=home)  # same output: no new version
    assert sched.tick(T + 3) == []
    value["v"] = 2
    upstream.run(home=home)
    assert len(sched.tick(T + 4)) == 1


def test_bad_sensor_definitions() -> None:
    with pytest.raises(InvalidOptionError, match="glob pattern"):
        FileSensor("")
    with pytest.raises(InvalidOptionError, match=r"'pipeline\.task'"):
        on_new_version("features")
    with pytest.raises(InvalidOptionError, match="every='soon'"):
        Pipeline("p").sensor(lambda: True, every="soon")
    with pytest.raises(InvalidOptionError, match="two sensors named"):
        Pipeline("p", sensors=[FileSensor("a", name="x"), FileSensor("b", name="x")])
    with pytest.raises(InvalidOptionError, match="must be a Python identifier"):
        Pipeline("p", sensors=[FileSensor("a", name="../../etc")])  # it names runs and folders
    with pytest.raises(InvalidOptionError, match="as a sensor or trigger"):
        Pipeline("p", sensors=["landing/*.csv"])  # type: ignore[list-item]


def test_a_secret_a_sensor_gives_is_sealed_and_reaches_the_task(home: Path) -> None:
    seen = home.parent / "seen.txt"
    pipe = Pipeline("fetch", params={"token": Param("default", secret=True)})

    @pipe.sensor(every="1s")
    def arrived(cursor: int | None) -> SensorResult | None:
        return SensorResult(True, {"token": "sensor-given-tok-42"}, 1) if cursor is None else None

    @pipe.task
    def use(token: str) -> None:
        seen.write_text(str(token == "sensor-given-tok-42"))

    sched = Scheduler([Entry(pipe, "x")], home)
    assert len(sched.tick(T)) == 1
    assert queued(home, "fetch") != [{"token": "sensor-given-tok-42"}]
    while sched.launch():
        for _, thread in list(sched.active.values()):
            thread.join(30)
    sched.close()
    assert seen.read_text() == "True"
    stored = b"".join(path.read_bytes() for path in home.glob("cadenza.db*"))
    assert b"sensor-given-tok-42" not in stored
