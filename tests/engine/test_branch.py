"""Branches end to end, case by case against Airflow's SkipMixin.skip_all_except and its tests:
what a choice skips, what a bad choice does, and a branch reused from the cache choosing again
exactly as it chose, with ``plan`` saying so first."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cadenza import Pipeline
from cadenza.artifacts.serializers import serialize
from cadenza.engine.plan import plan_pipeline
from cadenza.exceptions import InvalidOptionError
from cadenza.testing import run_in_memory
from cadenza.workspace import Workspace


def states(result: Any) -> dict[str, str]:
    return {name: t.state for name, t in result.tasks.items()}


def optional_then_join(choice: Any, join_rule: str = "all_success") -> Pipeline:
    """Airflow's own picture: branch -> [task1, join], task1 -> join."""
    pipe = Pipeline("optional_join")

    @pipe.branch
    def branch() -> Any:
        return choice

    @pipe.task(after=["branch"])
    def task1() -> int:
        return 1

    @pipe.task(after=["branch", "task1"], trigger_rule=join_rule)
    def join() -> str:
        return "joined"

    return pipe


def test_choosing_the_optional_step_runs_the_join_after_it() -> None:
    result = run_in_memory(optional_then_join("task1"))
    assert states(result) == {"branch": "success", "task1": "success", "join": "success"}
    assert result.ok


@pytest.mark.parametrize(
    ("rule", "join"),
    [
        ("all_success", "skipped"),  # Airflow too: the skipped task1 skips an all_success join
        ("none_failed_min_one_success", "success"),  # the rule Airflow's docs give a join
        ("none_failed", "success"),
        ("one_success", "success"),
    ],
)
def test_choosing_the_join_directly_skips_the_optional_step(rule: str, join: str) -> None:
    result = run_in_memory(optional_then_join("join", rule))
    assert states(result) == {"branch": "success", "task1": "skipped", "join": join}
    assert result.ok


def test_choosing_both_runs_both() -> None:
    result = run_in_memory(optional_then_join(["task1", "join"]))
    assert states(result) == {"branch": "success", "task1": "success", "join": "success"}


@pytest.mark.parametrize("nothing", [None, [], ()])
def test_none_or_an_empty_list_skips_every_task_after_the_branch(nothing: Any) -> None:
    result = run_in_memory(optional_then_join(nothing, "none_failed_min_one_success"))
    assert states(result) == {"branch": "success", "task1": "skipped", "join": "skipped"}
    assert result.ok


def fan(choice: Any, **options: Any) -> tuple[Pipeline, list[str]]:
    """branch -> [a, b, c]; c -> after_c: Airflow's skip_all_except test DAG, one deeper."""
    pipe = Pipeline("fan")
    ran: list[str] = []

    @pipe.branch(**options)
    def branch() -> Any:
        ran.append("branch")
        return choice

    for name in ("a", "b", "c"):
        pipe.task(lambda name=name: ran.append(name), name=name, after=["branch"], cache=False)
    pipe.task(lambda: ran.append("after_c"), name="after_c", after=["c"], cache=False)
    return pipe, ran


@pytest.mark.parametrize(
    ("choice", "runs"),
    [("a", {"a"}), (["a"], {"a"}), (("a",), {"a"}), (["a", "c"], {"a", "c", "after_c"}),
     ({"b"}, {"b"})],
)
def test_a_name_or_a_list_of_names_follows_exactly_those(choice: Any, runs: set[str]) -> None:
    pipe, ran = fan(choice)
    result = run_in_memory(pipe)
    assert set(ran) == {"branch"} | runs
    assert {n for n, s in states(result).items() if s == "skipped"} == (
        {"a", "b", "c", "after_c"} - runs
    )


@pytest.mark.parametrize(
    ("choice", "bad"),
    [("d", "'d'"), (["a", "d"], "'d'"), ("after_c", "'after_c'"), (42, "42"),
     (["a", 42], "42"), ({"a": 1}, "{'a': 1}")],
)
def test_a_choice_that_is_not_a_task_directly_after_the_branch_fails_it(
    choice: Any, bad: str
) -> None:
    pipe, ran = fan(choice, retries=2)
    result = run_in_memory(pipe)
    branch = result.tasks["branch"]
    assert branch.state == "failed"
    assert branch.error == (
        f"Branch 'branch' returned {bad}, which is not a task directly after it. Return one "
        "of 'a', 'b', 'c' (or a list of them), or None to skip them all."
    )
    assert ran == ["branch"]  # once: the same inputs make the same choice, so no retry
    assert {states(result)[n] for n in ("a", "b", "c", "after_c")} == {"upstream_failed"}
    assert result.state == "failed"


def test_a_branch_with_nothing_after_it_may_only_choose_nothing() -> None:
    pipe = Pipeline("lonely")
    pipe.branch(lambda: None, name="quiet")
    pipe.branch(lambda: "x", name="chatty")
    result = run_in_memory(pipe)
    assert states(result) == {"quiet": "success", "chatty": "failed"}
    assert "returned 'x'" in (result.tasks["chatty"].error or "")
    assert "one of nothing: no task comes after it" in (result.tasks["chatty"].error or "")


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("all_success", "skipped"),
        ("all_done", "success"),
        ("all_failed", "skipped"),
        ("all_skipped", "success"),
        ("one_success", "skipped"),
        ("one_failed", "skipped"),
        ("one_done", "skipped"),
        ("none_failed", "success"),
        ("none_failed_min_one_success", "skipped"),
        ("none_skipped", "skipped"),
        ("always", "success"),
    ],
)
def test_a_task_after_a_skipped_one_follows_its_trigger_rule(rule: str, expected: str) -> None:
    pipe = Pipeline("after_skip")
    pipe.branch(lambda: "kept", name="branch")
    pipe.task(lambda: 1, name="kept", after=["branch"])
    pipe.task(lambda: 2, name="dropped", after=["branch"])
    pipe.task(lambda: 3, name="next", after=["dropped"], trigger_rule=rule)
    result = run_in_memory(pipe)
    assert result.tasks["dropped"].state == "skipped"
    assert result.tasks["next"].state == expected


@pytest.mark.parametrize("rule", ["all_done", "always", "one_failed", "all_skipped"])
def test_the_branch_skips_what_it_did_not_choose_whatever_its_trigger_rule(rule: str) -> None:
    pipe = Pipeline("rule_ignored")
    pipe.branch(lambda: "kept", name="branch")
    pipe.task(lambda: 1, name="kept", after=["branch"])
    pipe.task(lambda: 2, name="dropped", after=["branch"], trigger_rule=rule)
    assert run_in_memory(pipe).tasks["dropped"].state == "skipped"


def test_a_skip_by_the_branch_wins_over_an_upstream_failure() -> None:
    """Airflow sets the unchosen task skipped directly, whatever else it waits for."""
    pipe = Pipeline("skip_wins")
    pipe.branch(lambda: "kept", name="branch")
    pipe.task(lambda: 1, name="kept", after=["branch"])

    @pipe.task
    def broken() -> None:
        raise ValueError("boom")

    pipe.task(lambda: 2, name="dropped", after=["branch", "broken"])
    result = run_in_memory(pipe)
    assert states(result) == {"branch": "success", "kept": "success", "broken": "failed",
                              "dropped": "skipped"}


def test_a_failed_branch_fails_what_is_after_it() -> None:
    pipe = Pipeline("branch_fails")

    @pipe.branch
    def branch() -> str:
        raise ValueError("cannot decide")

    pipe.task(lambda: 1, name="a", after=["branch"])
    pipe.task(lambda: 2, name="b", after=["branch"], trigger_rule="all_done")
    assert states(run_in_memory(pipe)) == {"branch": "failed", "a": "upstream_failed",
                                           "b": "success"}


def test_a_branch_cannot_be_mapped() -> None:
    pipe = Pipeline("mapped_branch")
    pipe.task(lambda: [1, 2], name="items")
    with pytest.raises(InvalidOptionError, match="Branch 'pick' cannot take map_over") as raised:
        pipe.branch(lambda items: "a", name="pick", map_over="items")
    assert "\n" not in str(raised.value)


# -- a cached branch still chooses -----------------------------------------------------------


def counted(log: Path, choose: Callable[[int], str] | None = None) -> Pipeline:
    """size -> pick -> [small, big]; big -> after_big; [small, big] -> join. Every body
    appends its name to ``log``, so the file counts executions across runs and processes."""
    pipe = Pipeline("counted", params={"n": 3})

    def note(name: str) -> None:
        with open(log, "a") as handle:
            handle.write(name + "\n")

    @pipe.task
    def size(n: int) -> int:
        note("size")
        return n

    @pipe.branch
    def pick(size: int) -> str:
        note("pick")
        return "small" if size < 5 else "big"

    @pipe.task(after=["pick"])
    def small() -> str:
        note("small")
        return "s"

    @pipe.task(after=["pick"])
    def big() -> str:
        note("big")
        return "b"

    @pipe.task
    def after_big(big: str) -> str:
        note("after_big")
        return big

    @pipe.task(after=["small", "big"], trigger_rule="none_failed_min_one_success")
    def join() -> str:
        note("join")
        return "joined"

    return pipe


def ran(log: Path) -> list[str]:
    found = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return found


def plan_states(pipe: Pipeline, home: Path, params: dict[str, Any]) -> dict[str, str]:
    """What plan says each task will do, in the run's words: runs, cached or skipped."""
    steps = plan_pipeline(pipe, Workspace.open(home), {**pipe.params, **params})
    return {s.task: "runs" if s.runs else "skipped" if s.reason.startswith("skipped")
            else "cached" for s in steps}


def run_states(result: Any) -> dict[str, str]:
    return {n: "runs" if s in ("success", "failed") else s for n, s in states(result).items()}


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_a_cached_branch_chooses_again_and_never_runs_what_it_did_not_choose(
    home: Path, tmp_path: Path, executor: str
) -> None:
    log = tmp_path / "ran.txt"
    pipe = counted(log)
    first = pipe.run(home=home, executor=executor)
    assert states(first) == {"size": "success", "pick": "success", "small": "success",
                             "big": "skipped", "after_big": "skipped", "join": "success"}
    assert sorted(ran(log)) == ["join", "pick", "size", "small"]

    planned = plan_states(pipe, home, {})
    second = pipe.run(home=home, executor=executor)
    assert states(second) == {"size": "cached", "pick": "cached", "small": "cached",
                              "big": "skipped", "after_big": "skipped", "join": "cached"}
    assert ran(log) == []  # nothing ran: above all not big, the path pick did not choose
    assert planned == run_states(second)


def test_each_cached_choice_is_the_one_recorded_for_its_inputs(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "ran.txt"
    pipe = counted(log)
    pipe.run(home=home)
    assert sorted(ran(log)) == ["join", "pick", "size", "small"]

    big = pipe.run({"n": 9}, home=home)  # a new input: pick runs and chooses big
    assert sorted(ran(log)) == ["after_big", "big", "pick", "size"]  # join reads no data
    assert states(big)["small"] == "skipped"

    planned = plan_states(pipe, home, {"n": 3})
    small = pipe.run({"n": 3}, home=home)  # pick cached for n=3: it chose small then
    assert ran(log) == []
    assert states(small) == {"size": "cached", "pick": "cached", "small": "cached",
                             "big": "skipped", "after_big": "skipped", "join": "cached"}
    assert planned == run_states(small)

    planned = plan_states(pipe, home, {"n": 9})
    again = pipe.run({"n": 9}, home=home)
    assert ran(log) == []
    assert states(again)["small"] == "skipped" and states(again)["after_big"] == "cached"
    assert planned == run_states(again)


def test_a_resumed_run_applies_the_choice_its_branch_made(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "ran.txt"
    flag = tmp_path / "fixed"
    pipe = Pipeline("resumed")
    pipe.branch(lambda: "flaky", name="pick")

    @pipe.task(after=["pick"])
    def other() -> None:
        with open(log, "a") as handle:
            handle.write("other\n")

    @pipe.task(after=["pick"], cache=False)
    def flaky() -> None:
        with open(log, "a") as handle:
            handle.write("flaky\n")
        if not flag.exists():
            raise ValueError("not yet")

    first = pipe.run(home=home)
    assert states(first) == {"pick": "success", "other": "skipped", "flaky": "failed"}
    flag.touch()
    resumed = pipe.run(home=home, resume=first.run_id)
    assert states(resumed) == {"pick": "success", "other": "skipped", "flaky": "success"}
    assert ran(log) == ["flaky", "flaky"]


def _choose_a() -> str:
    return "a"


def test_a_cached_choice_of_a_task_no_longer_after_it_runs_the_branch_again(
    home: Path,
) -> None:
    """As a fresh run would: the branch runs, and fails for a choice it may not make."""
    before = Pipeline("renamed")
    before.branch(_choose_a, name="pick")
    before.task(lambda: 1, name="a", after=["pick"])
    assert before.run(home=home).ok

    after = Pipeline("renamed")
    after.branch(_choose_a, name="pick")
    after.task(lambda: 1, name="b", after=["pick"])
    result = after.run(home=home)
    assert states(result) == {"pick": "failed", "b": "upstream_failed"}
    assert "returned 'a', which is not a task directly after it" in (
        result.tasks["pick"].error or ""
    )


def test_a_damaged_stored_choice_is_never_followed(home: Path, tmp_path: Path) -> None:
    """Someone rewrote pick's stored choice from 'small' to 'big': pick runs again."""
    log = tmp_path / "ran.txt"
    pipe = counted(log)
    first = pipe.run(home=home)
    ran(log)
    db = sqlite3.connect(home / "cadenza.db")
    db.execute("UPDATE artifacts SET data = ? WHERE hash = ?",
               (serialize("big", "pick")[1], first.tasks["pick"].output))
    db.commit()
    db.close()
    second = pipe.run(home=home)
    assert ran(log) == ["pick"]
    assert states(second)["pick"] == "success" and states(second)["big"] == "skipped"
