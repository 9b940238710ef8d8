"""The checked DAG: edges from parameter names, cycle and unknown-input reports, stable order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from cadenza import CycleError, DefinitionError, InvalidOptionError, Pipeline, UnknownInputError
from cadenza.graph import Graph


def _rotations(loop: list[str]) -> list[list[str]]:
    """Every way to write the closed loop ``loop`` (first repeated last) from another start."""
    body = loop[:-1]
    return [[*body[i:], *body[:i], body[i]] for i in range(len(body))]


# -- edges -----------------------------------------------------------------------------------


def test_dependencies_come_from_parameter_names() -> None:
    pipe = Pipeline("p", params={"threshold": 0.5})

    @pipe.task
    def ingest() -> None: ...

    @pipe.task
    def clean(ingest: Any) -> None: ...

    @pipe.task
    def train(clean: Any, threshold: float, ctx: Any) -> None: ...

    @pipe.task
    def report(clean: Any, train: Any) -> None: ...

    graph = pipe.graph()
    assert isinstance(graph, Graph)
    assert graph.pipeline == "p"
    assert len(graph) == 4

    train_node = graph.nodes["train"]
    assert train_node.name == "train"
    assert train_node.spec is pipe.tasks["train"]
    assert train_node.inputs == ("clean",)
    assert train_node.params == ("threshold",)
    assert train_node.wants_ctx is True
    assert train_node.upstream == ("clean",)
    assert train_node.downstream == ("report",)

    assert graph.nodes["ingest"].upstream == ()
    assert graph.nodes["ingest"].wants_ctx is False
    assert graph.nodes["clean"].downstream == ("train", "report")
    assert graph.nodes["report"].inputs == ("clean", "train")  # parameter order


def test_after_adds_order_only_edges() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda: None, name="setup")
    pipe.task(lambda: None, name="load")
    pipe.task(lambda load: None, name="work", after=["setup"])

    work = pipe.graph().nodes["work"]
    assert work.inputs == ("load",)  # after= names are not inputs
    assert work.upstream == ("load", "setup")  # inputs first, then after=
    assert pipe.graph().nodes["setup"].downstream == ("work",)


def test_after_naming_an_input_again_is_one_edge() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda: None, name="a")
    pipe.task(lambda a: None, name="b", after=["a", "a"])
    graph = pipe.graph()
    assert graph.nodes["b"].upstream == ("a",)
    assert graph.nodes["a"].downstream == ("b",)
    assert graph.order == ("a", "b")


def test_a_task_name_wins_over_a_param_of_the_same_name() -> None:
    pipe = Pipeline("p", params={"data": 1})
    pipe.task(lambda: None, name="data")
    pipe.task(lambda data: None, name="use")
    node = pipe.graph().nodes["use"]
    assert node.inputs == ("data",)
    assert node.params == ()


def test_a_task_named_ctx_is_an_input_not_the_context() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda: None, name="ctx")
    pipe.task(lambda ctx: None, name="use")
    node = pipe.graph().nodes["use"]
    assert node.inputs == ("ctx",)
    assert node.wants_ctx is False


def test_a_parameter_with_a_default_need_not_name_anything() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda limit=10: None, name="t")
    node = pipe.graph().nodes["t"]
    assert (node.inputs, node.params, node.upstream) == ((), (), ())


def test_input_files_are_carried_on_the_node() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda: None, name="t", inputs=["a.csv", "b.csv"])
    assert pipe.graph().nodes["t"].input_files == ("a.csv", "b.csv")


def test_map_over_a_param_is_rejected_when_the_graph_is_built() -> None:
    pipe = Pipeline("p", params={"partitions": ["a", "b"]})

    @pipe.task(map_over="partitions")
    def load(partitions: list[str]) -> None: ...

    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.graph()
    assert excinfo.value.option == "map_over"
    assert excinfo.value.task == "load"
    assert "'partitions'" in str(excinfo.value)
    assert "upstream task" in str(excinfo.value)


def test_map_over_an_upstream_task() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda: ["a", "b"], name="partitions")
    pipe.task(lambda partitions: None, name="load", map_over="partitions")
    assert pipe.graph().nodes["load"].inputs == ("partitions",)


# -- cycles ----------------------------------------------------------------------------------


def _three_cycle() -> Pipeline:
    pipe = Pipeline("loop")
    pipe.task(lambda c: None, name="a")
    pipe.task(lambda a: None, name="b")
    pipe.task(lambda b: None, name="c")
    return pipe


def test_cycle_error_names_the_loop() -> None:
    with pytest.raises(CycleError) as excinfo:
        _three_cycle().graph()
    exc = excinfo.value
    assert isinstance(exc, DefinitionError)
    assert exc.pipeline == "loop"
    # data flows a -> b -> c -> a; the report may start anywhere on the loop
    assert exc.cycle in _rotations(["a", "b", "c", "a"])
    assert exc.cycle[0] == exc.cycle[-1]
    assert exc.task == exc.cycle[0]
    message = str(exc)
    assert " -> ".join(exc.cycle) in message
    assert "'loop'" in message
    assert "remove one of these dependencies" in message


def test_cycle_report_is_deterministic() -> None:
    reports = set()
    for _ in range(3):
        with pytest.raises(CycleError) as excinfo:
            _three_cycle().graph()
        reports.add(tuple(excinfo.value.cycle))
    assert len(reports) == 1


def test_cycle_report_leaves_out_tasks_that_only_hang_off_the_loop() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda b: None, name="tail")  # downstream of the loop, stuck but not in it
    pipe.task(lambda: None, name="root")
    pipe.task(lambda root, b: None, name="a")
    pipe.task(lambda a: None, name="b")
    with pytest.raises(CycleError) as excinfo:
        pipe.graph()
    assert excinfo.value.cycle in _rotations(["a", "b", "a"])


def test_cycle_through_after() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda: None, name="a", after=["b"])
    pipe.task(lambda a: None, name="b")
    with pytest.raises(CycleError) as excinfo:
        pipe.graph()
    assert excinfo.value.cycle in _rotations(["a", "b", "a"])


def test_self_dependency_by_parameter() -> None:
    pipe = Pipeline("p")

    @pipe.task
    def grow(grow: int) -> None: ...

    with pytest.raises(CycleError) as excinfo:
        pipe.graph()
    assert excinfo.value.cycle == ["grow", "grow"]
    assert excinfo.value.task == "grow"
    assert "'grow'" in str(excinfo.value) and "depends on itself" in str(excinfo.value)


def test_self_dependency_by_after() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda: None, name="t", after="t")
    with pytest.raises(CycleError) as excinfo:
        pipe.graph()
    assert excinfo.value.cycle == ["t", "t"]


def test_a_failed_build_is_not_cached() -> None:
    pipe = _three_cycle()
    for _ in range(2):
        with pytest.raises(CycleError):
            pipe.graph()


# -- unknown names ---------------------------------------------------------------------------


def test_unknown_input_suggests_the_close_name() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda: None, name="clean")
    pipe.task(lambda clean_df: None, name="train")
    with pytest.raises(UnknownInputError) as excinfo:
        pipe.graph()
    exc = excinfo.value
    assert isinstance(exc, DefinitionError)
    assert exc.pipeline == "p"
    assert exc.task == "train"
    assert exc.name == "clean_df"
    assert exc.suggestion == "clean"
    assert str(exc) == (
        "Task 'train' asks for input 'clean_df', but no task or param is named that. "
        "Did you mean 'clean'?"
    )


def test_unknown_input_suggests_a_param() -> None:
    pipe = Pipeline("p", params={"threshold": 0.5})
    pipe.task(lambda threshhold: None, name="train")
    with pytest.raises(UnknownInputError) as excinfo:
        pipe.graph()
    assert excinfo.value.suggestion == "threshold"


def test_unknown_input_without_a_close_name_says_how_to_fix_it() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda: None, name="clean")
    pipe.task(lambda zzz: None, name="train")
    with pytest.raises(UnknownInputError) as excinfo:
        pipe.graph()
    assert excinfo.value.suggestion is None
    message = str(excinfo.value)
    assert "'zzz'" in message
    assert "Did you mean" not in message
    assert "Define a task named 'zzz'" in message and "default" in message


def test_unknown_after_name() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda: None, name="setup")
    pipe.task(lambda: None, name="work", after=["setpu"])
    with pytest.raises(UnknownInputError) as excinfo:
        pipe.graph()
    exc = excinfo.value
    assert exc.task == "work"
    assert exc.name == "setpu"
    assert exc.suggestion == "setup"
    assert "runs after 'setpu'" in str(exc)


def test_shell_inputs_that_name_no_task_are_files() -> None:
    pipe = Pipeline("p")
    pipe.shell("s", "cat {inputs[0]}", inputs=["clen"])
    node = pipe.graph().nodes["s"]
    assert node.inputs == ()
    assert node.input_files == ("clen",)


# -- order -----------------------------------------------------------------------------------


def test_order_is_topological_and_follows_definition_order_among_ties() -> None:
    pipe = Pipeline("p")
    pipe.task(lambda b: None, name="d")  # defined first, but needs b
    pipe.task(lambda: None, name="z")
    pipe.task(lambda: None, name="b")
    pipe.task(lambda: None, name="a")
    pipe.task(lambda a, z: None, name="c")
    graph = pipe.graph()
    assert graph.order == ("z", "b", "d", "a", "c")
    assert [node.name for node in graph] == list(graph.order)


def test_order_of_independent_tasks_is_definition_order() -> None:
    pipe = Pipeline("p")
    names = ["m", "a", "zz", "b", "q"]
    for name in names:
        pipe.task(lambda: None, name=name)
    assert list(pipe.graph().order) == names


_ORDER_SCRIPT = textwrap.dedent(
    """
    import json
    from cadenza import Pipeline

    pipe = Pipeline("p")
    names = [f"t{i}_{'xyz'[i % 3]}" for i in range(40)]
    pipe.task(lambda: None, name="root")
    for i, name in enumerate(names):
        up = ["root"] if i % 2 else [names[i - 1]] if i else []
        pipe.task(lambda: None, name=name, after=up)
    for name in ("sink_b", "sink_a"):
        pipe.task(lambda: None, name=name, after=names[::-1])
    print(json.dumps(list(pipe.graph().order)))
    """
)


def _order_with_seed(seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", _ORDER_SCRIPT], env=env, capture_output=True, text=True,
        check=True, timeout=60,
    )
    order: list[str] = json.loads(out.stdout)
    return order


def test_order_does_not_depend_on_the_hash_seed() -> None:
    first, second = _order_with_seed("1"), _order_with_seed("2")
    assert first == second
    assert len(first) == 43
    assert first[:2] == ["root", "t0_x"]
    assert first[-2:] == ["sink_b", "sink_a"]


# -- walking ---------------------------------------------------------------------------------


@pytest.fixture
def diamond() -> Graph:
    pipe = Pipeline("p")
    pipe.task(lambda: None, name="ingest")
    pipe.task(lambda ingest: None, name="clean")
    pipe.task(lambda clean: None, name="train")
    pipe.task(lambda clean: None, name="report")
    pipe.task(lambda train, report: None, name="publish")
    pipe.task(lambda: None, name="other")
    return pipe.graph()


def test_descendants(diamond: Graph) -> None:
    assert diamond.descendants(["clean"]) == {"clean", "train", "report", "publish"}
    assert diamond.descendants(["train", "other"]) == {"train", "publish", "other"}
    assert diamond.descendants(["publish"]) == {"publish"}
    assert diamond.descendants([]) == set()


def test_ancestors(diamond: Graph) -> None:
    assert diamond.ancestors(["publish"]) == {"publish", "train", "report", "clean", "ingest"}
    assert diamond.ancestors(["clean"]) == {"clean", "ingest"}
    assert diamond.ancestors(["ingest", "other"]) == {"ingest", "other"}
