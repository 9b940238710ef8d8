"""The scheduler with a fake clock: each due interval gets exactly one run, whatever happens
between ticks (repeats, restarts, a clock stepped back, downtime), and a bad pipeline never
stops the others."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cadenza import Param, Pipeline, ctx
from cadenza.schedule.scheduler import Entry, Scheduler, SchedulerBusyError, due_intervals
from cadenza.workspace import Workspace

START = datetime(2026, 11, 1, tzinfo=UTC)


def at(hours: float) -> float:
    """The fake clock: `hours` after START."""
    return START.timestamp() + hours * 3600


def hourly(name: str = "hourly", catchup: bool = True, **kwargs: object) -> Pipeline:
    pipe = Pipeline(name, every="1h", start=START, catchup=catchup, **kwargs)  # type: ignore[arg-type]

    @pipe.task(cache="interval")
    def stamp() -> list[str | None]:
        return [ctx.logical_date, ctx.interval_start, ctx.interval_end]

    return pipe


def intervals(home: Path, pipeline: str) -> list[str]:
    ws = Workspace.open(home)
    try:
        return sorted(r.interval_start or "" for r in ws.store.list_runs(pipeline, 10_000))
    finally:
        ws.close()


def finish(scheduler: Scheduler) -> None:
    """Launch and wait, round after round, until nothing is left to start."""
    while scheduler.launch():
        for _, thread in list(scheduler.active.values()):
            thread.join(30)


def test_each_interval_gets_one_run_however_often_we_tick(home: Path) -> None:
    sched = Scheduler([Entry(hourly(), "x")], home, clock=lambda: at(3.5))
    assert len(sched.tick()) == 3  # 00-01, 01-02, 02-03 have ended by 03:30
    assert sched.tick() == [] and sched.tick(at(3.9)) == []
    assert len(sched.tick(at(4))) == 1
    assert intervals(home, "hourly") == [
        "2026-11-01T00:00:00+00:00", "2026-11-01T01:00:00+00:00",
        "2026-11-01T02:00:00+00:00", "2026-11-01T03:00:00+00:00",
    ]


def test_runs_carry_their_data_interval(home: Path) -> None:
    sched = Scheduler([Entry(hourly(), "x")], home, max_runs=2)
    sched.tick(at(2))
    finish(sched)
    ws = Workspace.open(home)
    runs = sorted(ws.store.list_runs("hourly"), key=lambda r: r.interval_start or "")
    assert [r.state for r in runs] == ["success", "success"]
    from cadenza.engine.result import load_value

    outputs = [
        load_value(ws, next(ti.output for ti in ws.store.task_instances(r.run_id)))  # type: ignore[arg-type]
        for r in runs
    ]
    assert outputs == [
        ["2026-11-01T00:00:00+00:00"] * 2 + ["2026-11-01T01:00:00+00:00"],
        ["2026-11-01T01:00:00+00:00"] * 2 + ["2026-11-01T02:00:00+00:00"],
    ]


def test_a_restart_between_creating_and_starting_runs_each_once(home: Path) -> None:
    first = Scheduler([Entry(hourly(), "x")], home)
    created = first.tick(at(2))
    first.close()  # what survives a kill -9: only the store
    second = Scheduler([Entry(hourly(), "x")], home)
    assert second.tick(at(2)) == []
    finish(second)
    ws = Workspace.open(home)
    assert sorted(r.run_id for r in ws.store.list_runs("hourly")) == sorted(created)
    assert all(r.state == "success" for r in ws.store.list_runs("hourly"))


def test_clock_stepped_back_and_long_downtime(home: Path) -> None:
    sched = Scheduler([Entry(hourly(), "a"), Entry(hourly("latest", catchup=False), "b")], home)
    sched.tick(at(5))
    assert sched.tick(at(2)) == []  # the clock went back: nothing new, nothing twice
    after_downtime = sched.tick(at(48))
    pipelines = [run_id.split("-")[0] for run_id in after_downtime]
    assert pipelines.count("hourly") == 43  # catchup: every missed hour
    assert pipelines.count("latest") == 1  # no catchup: only the newest
    assert intervals(home, "latest")[-1] == "2026-11-02T23:00:00+00:00"


def test_without_catchup_a_new_pipeline_starts_at_the_newest_interval() -> None:
    pipe = hourly("fresh", catchup=False)
    due = due_intervals(pipe, None, datetime.fromtimestamp(at(10.5), UTC))
    assert [d.start.hour for d in due] == [9]


def test_paused_pipelines_get_no_runs(home: Path) -> None:
    sched = Scheduler([Entry(hourly(), "x")], home)
    sched.workspace.store.set_paused("hourly", True)
    assert sched.tick(at(3)) == []
    sched.workspace.store.set_paused("hourly", False)
    assert len(sched.tick(at(3))) == 3


def test_max_active_runs_and_max_runs(home: Path) -> None:
    release = threading.Event()
    pipe = Pipeline("slow", every="1h", start=START, catchup=True, max_active_runs=2)

    @pipe.task(cache=False)
    def wait() -> None:
        release.wait(10)

    sched = Scheduler([Entry(pipe, "x")], home, max_runs=10)
    sched.tick(at(5))
    assert len(sched.launch()) == 2
    assert sched.launch() == []
    release.set()
    for _, thread in list(sched.active.values()):
        thread.join(10)
    assert len(sched.launch()) == 2


def test_a_second_scheduler_on_the_same_store_refuses_to_start(home: Path) -> None:
    first = Scheduler([Entry(hourly(), "x")], home)
    first.acquire()
    second = Scheduler([Entry(hourly(), "x")], home)
    with pytest.raises(SchedulerBusyError, match=r"Another scheduler .* is serving this store"):
        second.acquire()


def test_a_scheduler_killed_on_this_host_gives_up_its_lease(home: Path) -> None:
    import socket

    ws = Workspace.open(home)
    dead = f"{socket.gethostname()}:{2**22 + 11}:abcdef"  # no such process
    ws.store.acquire_lease("scheduler", dead, time.time() + 30, time.time())
    Scheduler([Entry(hourly(), "x")], home).acquire()


def test_a_broken_pipeline_does_not_stop_the_others(home: Path) -> None:
    broken = hourly("broken")
    assert broken.schedule is not None

    def explode(*_: object) -> None:
        raise RuntimeError("sensor backend down")

    broken.schedule.next_after = explode  # type: ignore[method-assign,assignment]
    broken.schedule.intervals_between = explode  # type: ignore[method-assign,assignment]
    sched = Scheduler([Entry(broken, "b"), Entry(hourly(), "x")], home)
    created = sched.tick(at(2))
    assert [r.split("-")[0] for r in created] == ["hourly", "hourly"]
    assert sched.errors == ["broken: cannot work out its due runs: sensor backend down"]
    events = sched.workspace.store.events()
    assert events[-1].kind == "scheduler_error"


def test_serve_ticks_until_stopped_and_finishes_runs(home: Path) -> None:
    stop = threading.Event()
    ticks: list[tuple[list[str], list[str]]] = []

    def on_tick(created: list[str], started: list[str]) -> None:
        ticks.append((created, started))
        if len(ticks) == 3:
            stop.set()

    sched = Scheduler([Entry(hourly(), "x")], home, clock=lambda: at(1.5))
    assert sched.serve(stop, every=0.01, grace=10, on_tick=on_tick) == []
    assert len(ticks[0][0]) == 1 and len(ticks[0][1]) == 1
    assert all(r.state == "success" for r in sched.workspace.store.list_runs("hourly"))
    # the lease was given back: another scheduler may start now
    Scheduler([Entry(hourly(), "x")], home).acquire()


def test_runs_left_after_the_grace_period_are_interrupted_and_resumed(home: Path) -> None:
    gate = threading.Event()
    pipe = Pipeline("stuck", every="1h", start=START, catchup=True)
    calls: list[int] = []

    @pipe.task(cache=False)
    def hang() -> None:
        calls.append(1)
        if len(calls) == 1:
            gate.wait(10)

    stop = threading.Event()
    stop.set()
    sched = Scheduler([Entry(pipe, "x")], home, clock=lambda: at(1.5))
    sched.tick()
    sched.launch()
    time.sleep(0.2)
    assert sched.serve(stop, grace=0.1) != []
    assert [r.state for r in sched.workspace.store.list_runs("stuck")] == ["interrupted"]
    gate.set()
    time.sleep(0.1)
    again = Scheduler([Entry(pipe, "x")], home)
    finish(again)
    assert [r.state for r in again.workspace.store.list_runs("stuck")] == ["success"]


def test_the_scheduler_resumes_a_run_once_its_gate_is_decided(home: Path) -> None:
    from cadenza.store.base import Approval

    pipe = Pipeline("gated", every="1h", start=START, catchup=True)

    @pipe.task
    def train() -> int:
        return 1

    pipe.gate("promote", after=["train"])

    @pipe.task(after=["promote"])
    def deploy() -> str:
        return "live"

    sched = Scheduler([Entry(pipe, "x")], home)
    sched.tick(at(1))
    finish(sched)
    [run] = sched.workspace.store.list_runs("gated")
    assert run.state == "waiting"
    assert sched.launch() == []  # nobody decided yet: nothing to resume
    # stamped on the store's clock, as actions.decide does: a decision counts for the opening
    # of the gate it follows (engine/gates.py)
    sched.workspace.store.decide(Approval(run.run_id, "promote", True, "ana",
                                          sched.workspace.store.clock()))
    finish(sched)
    assert sched.workspace.store.get_run(run.run_id).state == "success"


def _db_bytes(home: Path) -> bytes:
    return b"".join(path.read_bytes() for path in home.glob("cadenza.db*"))


def test_a_scheduled_run_stores_no_secret_default_and_its_task_gets_it(home: Path) -> None:
    seen = home.parent / "seen.txt"
    pipe = Pipeline("secretive", every="1h", start=START,
                    params={"password": Param("default-pw-0000", secret=True)})

    @pipe.task
    def login(password: str) -> None:
        with seen.open("a") as out:
            out.write(f"{password == 'default-pw-0000'}\n")

    sched = Scheduler([Entry(pipe, "x")], home, clock=lambda: at(1.5))
    assert len(sched.tick()) == 1
    finish(sched)
    sched.close()
    assert seen.read_text() == "True\n"
    ws = Workspace.open(home)
    try:
        [run] = ws.store.list_runs("secretive", 10)
        assert run.state == "success" and run.params == {"password": "***"}
    finally:
        ws.close()
    assert b"default-pw-0000" not in _db_bytes(home)
