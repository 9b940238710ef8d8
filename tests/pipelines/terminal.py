"""Pipelines for the pseudo-terminal tests: a task that takes a while and prints, a gate."""

import time

from cadenza import Pipeline

slow = Pipeline("slow")


@slow.task(cache=False)
def nap() -> int:
    time.sleep(0.5)
    print("napped well")
    return 1


@slow.task
def after(nap: int) -> int:
    return nap + 1


daily = Pipeline("daily", schedule="@daily", start="2026-01-01")


@daily.task(cache="interval")
def load(ctx) -> str:  # type: ignore[no-untyped-def]
    time.sleep(0.4)
    print("loaded", ctx.interval_start)
    return str(ctx.interval_start)


daily.gate("sign_off", after=["load"], message="Is the load complete?")


markup = Pipeline("markup")


@markup.task(cache=False)
def boom() -> None:
    raise KeyError("None of [Index(['id'])] are in the [columns] :smile: vm:1234:x")
