"""The run loop's semantics: dependency types, branching, trigger rules, mapping, retries,
timeouts, caching and resume, each against a real SQLite workspace."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cadenza import Pipeline, Retry, Skip, ctx
from cadenza.exceptions import CadenzaError, TaskTimeoutError
from cadenza.testing import run_in_memory
from cadenza.workspace import Workspace


def states(result):  # type: ignore[no-untyped-def]
    return {name: t.state for name, t in result.tasks.items()}


def test_sequential_parallel_fan_out_and_fan_in(home: Path) -> None:
    pipe = Pipeline("shapes")

    @pipe.task
    def source() -> int:
        return 2

    @pipe.task
    def left(source: int) -> int:
        return source * 10

    @pipe.task
    def right(source: int) -> int:
        return source + 1

    @pipe.task
    def join(left: int, right: int) -> list[int]:
        return [left, right]

    for executor in ("inline", "threads"):
        result = pipe.run(home=home, executor=executor, force=True)
        assert result.ok, result
        assert result.output("join") == [20, 3]


def test_after_edges_order_without_data(home: Path) -> None:
    pipe = Pipeline("order")
    seen: list[str] = []

    @pipe.task(cache=False)
    def first() -> None:
        seen.append("first")

    @pipe.task(after=["first"], cache=False)
    def second() -> None:
        seen.append("second")

    assert pipe.run(home=home).ok
    assert seen == ["first", "second"]


def test_branch_follows_the_chosen_path_and_skips_the_rest() -> None:
    pipe = Pipeline("branching")

    @pipe.branch
    def choose() -> str:
        return "fast"

    @pipe.task(after=["choose"])
    def fast() -> str:
        return "fast"

    @pipe.task(after=["choose"])
    def slow() -> str:
        return "slow"

    @pipe.task
    def after_slow(slow: str) -> str:
        return slow

    @pipe.task(trigger_rule="none_failed")
    def join(fast: str | None, slow: str | None) -> str | None:
        return fast or slow

    result = run_in_memory(pipe)
    assert states(result) == {
        "choose": "success", "fast": "success", "slow": "skipped",
        "after_slow": "skipped", "join": "success",
    }
    assert result.output("join") == "fast"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("all_success", "upstream_failed"),
        ("all_done", "success"),
        ("all_failed", "skipped"),
        ("one_success", "success"),
        ("one_failed", "success"),
        ("none_failed", "upstream_failed"),
    ],
)
def test_trigger_rules_after_one_failure_and_one_success(rule: str, expected: str) -> None:
    pipe = Pipeline("rules")

    @pipe.task
    def good() -> int:
        return 1

    @pipe.task
    def bad() -> int:
        raise ValueError("boom")

    @pipe.task(after=["good", "bad"], trigger_rule=rule)
    def downstream() -> str:
        return "ran"

    @pipe.task
    def further(downstream: str) -> str:
        return downstream

    result = run_in_memory(pipe)
    assert result.tasks["bad"].state == "failed"
    assert result.tasks["downstream"].state == expected
    if expected == "upstream_failed":
        assert result.tasks["further"].state == "upstream_failed"
    assert result.state == "failed"


def test_skip_raised_in_a_task_skips_its_downstream() -> None:
    pipe = Pipeline("skipping")

    @pipe.task
    def maybe() -> None:
        raise Skip("nothing new today")

    @pipe.task
    def use(maybe: None) -> None:
        return maybe

    result = run_in_memory(pipe)
    assert states(result) == {"maybe": "skipped", "use": "skipped"}
    assert result.ok


def test_mapping_runs_one_instance_per_item_in_order(home: Path) -> None:
    pipe = Pipeline("mapping")

    @pipe.task
    def items() -> list[int]:
        return [3, 1, 2]

    @pipe.task(map_over="items")
    def square(items: int, offset: int = 0) -> int:
        return items * items + offset

    @pipe.task
    def total(square: list[int]) -> int:
        return sum(square)

    result = pipe.run(home=home)
    assert result.output("square") == [9, 1, 4]
    assert result.output("total") == 14
    assert result.tasks["square"].items == 3
    again = pipe.run(home=home)
    assert states(again) == {"items": "cached", "square": "cached", "total": "cached"}


def test_mapping_over_an_empty_list_and_a_non_list() -> None:
    pipe = Pipeline("edge_maps")

    @pipe.task
    def nothing() -> list[int]:
        return []

    @pipe.task(map_over="nothing")
    def each(nothing: int) -> int:
        return nothing

    @pipe.task
    def scalar() -> int:
        return 5

    @pipe.task(map_over="scalar")
    def each_scalar(scalar: int) -> int:
        return scalar

    result = run_in_memory(pipe)
    assert result.output("each") == []
    assert result.tasks["each_scalar"].state == "failed"
    assert "returned int, not a list" in (result.tasks["each_scalar"].error or "")


def test_a_failed_mapped_item_fails_the_task_and_blocks_downstream() -> None:
    pipe = Pipeline("map_fail")

    @pipe.task
    def items() -> list[int]:
        return [1, 0, 2]

    @pipe.task(map_over="items")
    def invert(items: int) -> float:
        return 1 / items

    @pipe.task
    def total(invert: list[float]) -> float:
        return sum(invert)

    result = run_in_memory(pipe)
    assert result.tasks["invert"].state == "failed"
    assert "1 of 3 mapped items failed" in (result.tasks["invert"].error or "")
    assert result.tasks["total"].state == "upstream_failed"


def test_retries_record_every_attempt_and_then_succeed(home: Path) -> None:
    pipe = Pipeline("flaky")
    calls: list[int] = []

    @pipe.task(retries=Retry(3, backoff=0.01, factor=2), cache=False)
    def flaky() -> str:
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"try {ctx.attempt}")
        return "ok"

    result = pipe.run(home=home)
    assert result.ok
    assert calls == [1, 2, 3]
    attempts = result.tasks["flaky"].attempts
    assert [a.state for a in attempts] == ["failed", "failed", "success"]
    assert attempts[0].error == "ConnectionError: try 1"
    assert "ConnectionError" in (attempts[0].traceback or "")


def test_non_retryable_errors_fail_at_once() -> None:
    pipe = Pipeline("no_retry")

    @pipe.task(retries=Retry(3, backoff=0, non_retryable=(KeyError,)))
    def lookup() -> None:
        raise KeyError("missing")

    @pipe.task(retries=Retry(3, backoff=0, retry_on=(ConnectionError,)))
    def parse() -> None:
        raise ValueError("bad")

    result = run_in_memory(pipe)
    assert len(result.tasks["lookup"].attempts) == 1
    assert len(result.tasks["parse"].attempts) == 1


def test_pipeline_defaults_apply_to_every_task() -> None:
    pipe = Pipeline("defaults", defaults={"retries": Retry(1, backoff=0)})
    tries: list[int] = []

    @pipe.task
    def once_flaky() -> int:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("first time")
        return 1

    assert run_in_memory(pipe).ok
    assert len(tries) == 2


def test_timeout_on_threads_fails_the_attempt_and_ignores_its_late_result(home: Path) -> None:
    pipe = Pipeline("slow")

    @pipe.task(timeout=0.3, retries=Retry(1, backoff=0), cache=False)
    def slow() -> str:
        if ctx.attempt == 1:
            time.sleep(0.8)
            return "late"
        return "fresh"

    @pipe.task
    def hold(slow: str) -> str:
        time.sleep(1.0)  # keeps the run alive while attempt 1's late result arrives
        return slow

    result = pipe.run(home=home, executor="threads", workers=2)
    assert result.ok, result
    assert result.output("slow") == "fresh"
    assert [a.state for a in result.tasks["slow"].attempts] == ["timeout", "success"]
    assert "ran past its timeout of 0.3s" in (result.tasks["slow"].attempts[0].error or "")


def test_timeout_on_inline_is_checked_when_the_call_returns() -> None:
    pipe = Pipeline("inline_timeout")

    @pipe.task(timeout=0.05)
    def slow() -> None:
        time.sleep(0.1)

    result = run_in_memory(pipe)
    assert result.tasks["slow"].state == "failed"
    assert result.tasks["slow"].attempts[0].state == "timeout"
    assert TaskTimeoutError.__name__  # the error type users catch by name


def test_incremental_runs_rerun_only_what_changed(home: Path) -> None:
    runs: list[str] = []
    pipe = Pipeline("incremental", params={"scale": 2, "label": "x"})

    @pipe.task
    def load() -> list[int]:
        runs.append("load")
        return [1, 2, 3]

    @pipe.task
    def scaled(load: list[int], scale: int) -> list[int]:
        runs.append("scaled")
        return [v * scale for v in load]

    @pipe.task
    def labelled(scaled: list[int]) -> str:
        runs.append("labelled")
        return f"{ctx.params['label']}:{sum(scaled)}"

    assert pipe.run(home=home).output("labelled") == "x:12"
    assert runs == ["load", "scaled", "labelled"]
    runs.clear()
    again = pipe.run(home=home)
    assert set(states(again).values()) == {"cached"} and runs == []

    # A param only `labelled` reads, through ctx.params: only it runs again.
    assert pipe.run(home=home, params={"label": "y"}).output("labelled") == "y:12"
    assert runs == ["labelled"]
    runs.clear()
    # A param `scaled` takes: it and what depends on its changed output run again.
    assert pipe.run(home=home, params={"scale": 3}).output("labelled") == "x:18"
    assert runs == ["scaled", "labelled"]


def test_same_output_after_a_code_change_keeps_downstream_cached(home: Path) -> None:
    runs: list[str] = []

    def build(version: str) -> Pipeline:
        pipe = Pipeline("versions")

        @pipe.task(version=version)
        def numbers() -> list[int]:
            runs.append("numbers")
            return [1, 2]

        @pipe.task
        def total(numbers: list[int]) -> int:
            runs.append("total")
            return sum(numbers)

        return pipe

    build("1").run(home=home)
    runs.clear()
    result = build("2").run(home=home)
    assert runs == ["numbers"]
    assert states(result) == {"numbers": "success", "total": "cached"}


def test_cache_false_always_runs_and_missing_outputs_rerun(home: Path) -> None:
    pipe = Pipeline("outputs")

    @pipe.task(cache=False)
    def fresh() -> int:
        return 1

    @pipe.task(outputs={"data": "out/data.txt"})
    def write(fresh: int) -> int:
        ctx.outputs["data"].write_text("x" * 20000)
        return fresh

    first = pipe.run(home=home)
    assert first.ok and first.tasks["write"].files
    second = pipe.run(home=home)
    assert states(second) == {"fresh": "success", "write": "cached"}
    digest = first.tasks["write"].files["data"]
    workspace = Workspace.open(home)
    workspace.artifacts.delete(digest)
    third = pipe.run(home=home)
    assert third.tasks["write"].state == "success"


def test_a_declared_output_that_is_not_written_fails_the_task() -> None:
    pipe = Pipeline("forgetful")

    @pipe.task(outputs={"model": "models/m.pkl"})
    def train() -> None:
        return None

    result = run_in_memory(pipe)
    assert result.tasks["train"].state == "failed"
    assert "declares output 'model'" in (result.tasks["train"].error or "")


def test_an_unserializable_return_value_fails_without_retry() -> None:
    pipe = Pipeline("unstorable")

    @pipe.task(retries=3)
    def lock() -> object:
        return threading.Lock()

    result = run_in_memory(pipe)
    task = result.tasks["lock"]
    assert task.state == "failed" and len(task.attempts) == 1
    assert "no serializer could store" in (task.error or "")
    assert "register_serializer" in (task.error or "")


def test_resume_reruns_only_what_did_not_succeed(home: Path, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    runs: list[str] = []
    pipe = Pipeline("resumable")

    @pipe.task(cache=False)
    def extract() -> int:
        runs.append("extract")
        return 1

    @pipe.task(cache=False)
    def fragile(extract: int) -> int:
        runs.append("fragile")
        if not flag.exists():
            raise RuntimeError("not yet")
        return extract + 1

    @pipe.task(cache=False)
    def load(fragile: int) -> int:
        runs.append("load")
        return fragile

    first = pipe.run(home=home)
    assert first.state == "failed"
    assert states(first) == {"extract": "success", "fragile": "failed", "load": "upstream_failed"}
    runs.clear()
    flag.touch()
    resumed = pipe.run(home=home, resume=first.run_id)
    assert resumed.run_id == first.run_id and resumed.ok
    assert runs == ["fragile", "load"]
    assert [a.attempt for a in resumed.tasks["fragile"].attempts] == [1, 2]


def test_only_and_from_reuse_stored_outputs(home: Path) -> None:
    runs: list[str] = []
    pipe = Pipeline("selection")

    @pipe.task(cache=False)
    def a() -> int:
        runs.append("a")
        return 1

    @pipe.task(cache=False)
    def b(a: int) -> int:
        runs.append("b")
        return a + 1

    @pipe.task(cache=False)
    def c(b: int) -> int:
        runs.append("c")
        return b + 1

    with pytest.raises(CadenzaError, match="no earlier run stored their"):
        pipe.run(home=home, only=["c"])
    assert pipe.run(home=home).ok
    runs.clear()
    result = pipe.run(home=home, only=["b"])
    assert runs == ["b"] and states(result) == {"a": "cached", "b": "success", "c": "skipped"}
    runs.clear()
    assert pipe.run(home=home, from_=["b"]).output("c") == 3
    assert runs == ["b", "c"]
    with pytest.raises(CadenzaError, match="has no such task"):
        pipe.run(home=home, only=["nope"])


def test_cancel_stops_the_run_and_records_cancelled(home: Path) -> None:
    pipe = Pipeline("cancellable")

    @pipe.task(cache=False)
    def slow() -> None:
        time.sleep(0.6)

    @pipe.task
    def after(slow: None) -> None:
        return slow

    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    result = pipe.run(home=home, executor="threads", cancel=cancel)
    assert result.state == "cancelled"
    # a thread cannot be stopped: one that ends within CANCEL_GRACE is recorded as it ended
    assert states(result) == {"slow": "success", "after": "cancelled"}


def test_ctx_outside_a_task_says_how_to_use_it() -> None:
    with pytest.raises(CadenzaError, match="only available while a task runs"):
        _ = ctx.run_id


def test_ctx_gives_run_facts_and_a_logger(home: Path) -> None:
    pipe = Pipeline("facts", params={"n": 1})

    @pipe.task
    def facts(ctx) -> dict[str, object]:  # type: ignore[no-untyped-def]
        ctx.log.info("hello from %s", ctx.task)
        print("printed line")
        return {"run": ctx.run_id, "task": ctx.task, "attempt": ctx.attempt,
                "n": ctx.params["n"], "home": str(ctx.home)}

    result = pipe.run(home=home)
    value = result.output("facts")
    assert value["run"] == result.run_id and value["task"] == "facts"
    assert value["attempt"] == 1 and value["n"] == 1 and value["home"] == str(home)
    log = Path(result.tasks["facts"].attempts[0].log_path or "")
    text = log.read_text()
    assert "hello from facts" in text and "printed line" in text
    assert log.with_suffix(".jsonl").read_text().count("\n") == 2


def test_shell_tasks_read_inputs_and_hash_outputs(home: Path) -> None:
    pipe = Pipeline("shelly")

    @pipe.task
    def numbers() -> list[int]:
        return [1, 2, 3]

    pipe.shell("count", "wc -c < {inputs.numbers} > {outputs.size} && echo done",
               inputs=["numbers"], outputs={"size": "out/size.txt"})

    result = pipe.run(home=home)
    assert result.ok, result.tasks["count"].error
    assert (home.parent / "out/size.txt").read_text().strip() == "7"  # "[1,2,3]"
    assert set(result.tasks["count"].files) == {"size"}
    log = Path(result.tasks["count"].attempts[0].log_path or "")
    assert "done" in log.read_text()


def test_a_failing_shell_command_reports_its_status_and_output() -> None:
    pipe = Pipeline("shell_fail")
    pipe.shell("boom", "echo about to fail; exit 3")
    result = run_in_memory(pipe)
    error = result.tasks["boom"].error or ""
    assert "exited with status 3" in error and "about to fail" in error


def test_every_state_change_is_in_the_event_log(home: Path) -> None:
    pipe = Pipeline("events")

    @pipe.task
    def one() -> int:
        return 1

    result = pipe.run(home=home)
    events = Workspace.open(home).store.events(result.run_id)
    assert [(e.kind, e.task) for e in events] == [
        ("run_started", None), ("running", "one"), ("success", "one"), ("run_finished", None),
    ]


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_upstream_success_is_committed_before_a_dependent_starts(
    home: Path, executor: str
) -> None:
    from cadenza.store.sqlite import SqliteStore

    pipe = Pipeline("durable")

    @pipe.task(cache=False)
    def first() -> int:
        return 1

    @pipe.task(map_over="spread", cache=False)
    def many(spread: int) -> int:
        return spread

    @pipe.task(cache=False)
    def spread(first: int) -> list[int]:
        return list(range(20))

    @pipe.task(cache=False)
    def check(many: list[int], ctx) -> dict[str, str]:  # type: ignore[no-untyped-def]
        store = SqliteStore(ctx.home / "cadenza.db")  # another connection, as a reader
        try:
            seen = {(ti.task, ti.map_index): ti.state
                    for ti in store.task_instances(ctx.run_id)}
        finally:
            store.close()
        return {"many": seen[("many", -1)], "item": seen[("many", 7)],
                "first": seen[("first", -1)]}

    result = pipe.run(home=home, executor=executor, workers=2)
    assert result.ok, result
    assert result.output("check") == {"many": "success", "item": "success", "first": "success"}


def test_ctx_inputs_give_the_versions_a_task_received(home: Path) -> None:
    pipe = Pipeline("versions_in")

    @pipe.task
    def model() -> dict[str, int]:
        return {"w": 1}

    @pipe.task
    def promote(model: dict[str, int], ctx) -> str | None:  # type: ignore[no-untyped-def]
        return ctx.inputs["model"]

    result = pipe.run(home=home)
    assert result.output("promote") == result.tasks["model"].output


def test_folder_and_glob_inputs_key_on_their_contents(home: Path) -> None:
    landing = home.parent / "landing"
    landing.mkdir(parents=True)
    runs: list[str] = []
    pipe = Pipeline("landing")

    @pipe.task(inputs=["landing"])
    def whole() -> int:
        runs.append("whole")
        return len(list(landing.iterdir()))

    @pipe.task(inputs=["landing/*.csv"])
    def csvs() -> int:
        runs.append("csvs")
        return len(list(landing.glob("*.csv")))

    pipe.run(home=home)
    (landing / "a.csv").write_text("1")
    pipe.run(home=home)
    assert runs == ["whole", "csvs", "whole", "csvs"]
    runs.clear()
    pipe.run(home=home)
    assert runs == []  # nothing changed: both cached
    (landing / "notes.txt").write_text("x")
    pipe.run(home=home)
    assert runs == ["whole"]  # the glob does not match it
    runs.clear()
    (landing / "a.csv").write_text("2")
    pipe.run(home=home)
    assert runs == ["whole", "csvs"]


def test_a_run_id_that_could_climb_out_of_the_logs_folder_is_refused(tmp_path: Path) -> None:
    """Run ids become folder names under .cadenza/logs: one from a tampered store is refused
    before anything is written."""
    from cadenza.engine.launch import run_pipeline
    from cadenza.store.base import Batch, RunRecord

    pipe = Pipeline("p")
    pipe.task(lambda: 1, name="one")
    ws = Workspace.open(tmp_path / ".cadenza")
    ws.store.apply(Batch(runs=[RunRecord("../../evil", "p", "queued", {}, 1.0)]))
    with pytest.raises(CadenzaError, match="cannot be used"):
        run_pipeline(pipe, workspace=ws, resume="../../evil")
    assert not (tmp_path / "evil").exists()
    ws.close()
