"""A small pipeline whose every task body notes, in the file the param ``counts`` names, its
name and the process that forked it: a fan-out, a mapped task and a join."""

from __future__ import annotations

import os

from cadenza import Pipeline

pipe = Pipeline("counted", params={"counts": ""})


def note(counts: str, name: str) -> None:
    with open(counts, "a") as file:  # one short write: whole lines from many processes
        file.write(f"{name} {os.getppid()}\n")


@pipe.task
def start(counts: str) -> list[int]:
    note(counts, "start")
    return [1, 2, 3]


@pipe.task
def left(start: list[int], counts: str) -> int:
    note(counts, "left")
    return sum(start)


@pipe.task
def right(start: list[int], counts: str) -> int:
    note(counts, "right")
    return max(start)


@pipe.task(map_over="start")
def each(start: int, counts: str) -> int:
    note(counts, f"each{start}")
    return start * 10


@pipe.task
def join(left: int, right: int, each: list[int], counts: str) -> int:
    note(counts, "join")
    return left + right + sum(each)
