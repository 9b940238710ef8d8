"""Priority weights order the ready queue; pools and max_active_tasks bound what runs at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cadenza import Pipeline
from cadenza.exceptions import InvalidOptionError
from cadenza.testing import run_in_memory


class Gauge:
    """Counts how many calls are inside at once, and the most there ever were."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.now -= 1


def test_higher_priority_runs_first() -> None:
    pipe = Pipeline("priorities")
    order: list[str] = []
    for name, weight in [("low", 0), ("high", 10), ("middle", 5), ("also_low", 0)]:
        def task(name: str = name) -> None:
            order.append(name)
        pipe.task(task, name=name, priority=weight, cache=False)
    assert run_in_memory(pipe).ok
    assert order == ["high", "middle", "low", "also_low"]


def test_a_pool_bounds_its_tasks_and_not_the_others(home: Path) -> None:
    pipe = Pipeline("pooled", pools={"db": 1})
    in_pool, everyone = Gauge(), Gauge()

    def make(pooled: bool):  # type: ignore[no-untyped-def]
        def task() -> None:
            with everyone:
                if pooled:
                    with in_pool:
                        time.sleep(0.15)
                else:
                    time.sleep(0.15)
        return task

    for i in range(3):
        pipe.task(make(True), name=f"query{i}", pool="db", cache=False)
        pipe.task(make(False), name=f"compute{i}", cache=False)
    result = pipe.run(home=home, executor="threads", workers=4)
    assert result.ok
    assert in_pool.most == 1
    assert everyone.most >= 3


def test_max_active_tasks_bounds_the_whole_pipeline(home: Path) -> None:
    pipe = Pipeline("narrow", max_active_tasks=2)
    gauge = Gauge()

    def task() -> None:
        with gauge:
            time.sleep(0.1)

    for i in range(6):
        pipe.task(task, name=f"t{i}", cache=False)
    assert pipe.run(home=home, executor="threads", workers=4).ok
    assert gauge.most == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pools": {"db": 0}}, "give each pool a name and a whole number of slots"),
        ({"max_active_tasks": 0}, "max_active_tasks=0"),
    ],
)
def test_bad_concurrency_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        Pipeline("bad", **kwargs)  # type: ignore[arg-type]


def test_an_unknown_pool_is_a_definition_error() -> None:
    pipe = Pipeline("typo", pools={"db": 2})

    @pipe.task(pool="bd")
    def query() -> None: ...

    with pytest.raises(InvalidOptionError, match="uses pool 'bd', which pipeline 'typo'"):
        pipe.validate()
    with pytest.raises(InvalidOptionError, match="priority"):
        pipe.task(lambda: None, name="x", priority="high")
