"""Pipeline and its decorators: what a definition turns into, and every way it can be wrong."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cadenza import (
    CadenzaError,
    DefinitionError,
    DuplicateTaskError,
    InvalidOptionError,
    Pipeline,
    Retry,
    TaskSpec,
)
from cadenza.engine.retry import NO_RETRY
from cadenza.pipeline import TRIGGER_RULES


@pytest.fixture
def pipe() -> Pipeline:
    return Pipeline("demo", params={"threshold": 0.5})


def _option_error(excinfo: pytest.ExceptionInfo[InvalidOptionError], option: str) -> str:
    """The checks every InvalidOptionError shares; returns the message."""
    exc = excinfo.value
    assert type(exc) is InvalidOptionError
    assert isinstance(exc, DefinitionError)
    assert isinstance(exc, CadenzaError)
    assert exc.option == option
    return str(exc)


# -- decoration ------------------------------------------------------------------------------


def test_bare_decorator_returns_the_function_unchanged(pipe: Pipeline) -> None:
    def ingest() -> int:
        return 41

    assert pipe.task(ingest) is ingest
    assert ingest() == 41  # still an ordinary function


def test_decorator_with_options_returns_the_function_unchanged(pipe: Pipeline) -> None:
    def clean(ingest: int) -> int:
        return ingest + 1

    decorated = pipe.task(retries=2, timeout="10m")(clean)
    assert decorated is clean
    assert clean(1) == 2


def test_spec_is_plain_data_from_the_signature(pipe: Pipeline) -> None:
    @pipe.task
    def train(clean: int, threshold: float, ctx: Any, extra: int = 3) -> None:
        """Fit the model.

        More detail that is not part of the description.
        """

    spec = pipe.tasks["train"]
    assert isinstance(spec, TaskSpec)
    assert spec.name == "train"
    assert spec.kind == "python"
    assert spec.fn is train
    assert spec.args == ("clean", "threshold", "ctx", "extra")
    assert spec.optional_args == frozenset({"extra"})
    assert spec.description == "Fit the model."
    # the defaults of a task without options
    assert spec.retry == NO_RETRY
    assert spec.timeout is None
    assert spec.cache is True
    assert spec.version is None
    assert spec.trigger_rule == "all_success"
    assert spec.after == ()
    assert spec.outputs == {}
    assert spec.input_files == ()
    assert spec.map_over is None
    assert spec.command is None


def test_tasks_keep_definition_order(pipe: Pipeline) -> None:
    for name in ("zeta", "alpha", "mid"):
        pipe.task(lambda: None, name=name)
    assert list(pipe.tasks) == ["zeta", "alpha", "mid"]
    assert repr(pipe) == "Pipeline('demo', tasks=['zeta', 'alpha', 'mid'])"


def test_name_option_overrides_the_function_name(pipe: Pipeline) -> None:
    @pipe.task(name="renamed")
    def original() -> None: ...

    assert list(pipe.tasks) == ["renamed"]
    assert pipe.tasks["renamed"].fn is original


def test_keyword_only_parameters_are_allowed(pipe: Pipeline) -> None:
    @pipe.task
    def t(*, threshold: float) -> None: ...

    assert pipe.tasks["t"].args == ("threshold",)


def test_branch_declares_a_branch_task(pipe: Pipeline) -> None:
    @pipe.branch
    def pick() -> str:
        return "a"

    assert pipe.tasks["pick"].kind == "branch"


def test_adding_a_task_rebuilds_the_graph(pipe: Pipeline) -> None:
    pipe.task(lambda: 1, name="a")
    first = pipe.graph()
    assert pipe.graph() is first  # built once
    pipe.task(lambda a: a, name="b")
    assert list(pipe.graph().order) == ["a", "b"]


def test_validate_returns_the_pipeline(pipe: Pipeline) -> None:
    pipe.task(lambda: 1, name="a")
    assert pipe.validate() is pipe


# -- option coercion -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (0, Retry(0)),
        (3, Retry(3)),
        (Retry(2, backoff=0.5, max_delay=30), Retry(2, backoff=0.5, max_delay=30)),
    ],
)
def test_retries_become_a_retry(pipe: Pipeline, given: object, expected: Retry) -> None:
    pipe.task(lambda: None, name="t", retries=given)
    assert pipe.tasks["t"].retry == expected


def test_a_retry_object_is_kept_as_is(pipe: Pipeline) -> None:
    policy = Retry(2, retry_on=(OSError,))
    pipe.task(lambda: None, name="t", retries=policy)
    assert pipe.tasks["t"].retry is policy


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("10m", 600.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        (45, 45.0),
        (2.5, 2.5),
        (timedelta(minutes=2), 120.0),
        (None, None),
    ],
)
def test_timeout_becomes_seconds(pipe: Pipeline, given: object, seconds: float | None) -> None:
    pipe.task(lambda: None, name="t", timeout=given)
    assert pipe.tasks["t"].timeout == seconds
    assert seconds is None or type(pipe.tasks["t"].timeout) is float


@pytest.mark.parametrize("given", [True, False, "interval"])
def test_cache_policies(pipe: Pipeline, given: object) -> None:
    pipe.task(lambda: None, name="t", cache=given)
    assert pipe.tasks["t"].cache == given
    assert type(pipe.tasks["t"].cache) is type(given)


@pytest.mark.parametrize("rule", sorted(TRIGGER_RULES))
def test_every_trigger_rule_is_accepted(pipe: Pipeline, rule: str) -> None:
    pipe.task(lambda: None, name="t", trigger_rule=rule)
    assert pipe.tasks["t"].trigger_rule == rule


def test_airflows_trigger_rules() -> None:
    assert frozenset(
        {"all_success", "all_done", "all_failed", "all_skipped", "one_success", "one_failed",
         "one_done", "none_failed", "none_failed_min_one_success", "none_skipped", "always"}
    ) == TRIGGER_RULES


@pytest.mark.parametrize(
    ("given", "expected"),
    [("ingest", ("ingest",)), (["a", "b"], ("a", "b")), (("a",), ("a",)), ([], ())],
)
def test_after_becomes_a_tuple(pipe: Pipeline, given: object, expected: tuple[str, ...]) -> None:
    pipe.task(lambda: None, name="t", after=given)
    assert pipe.tasks["t"].after == expected


def test_outputs_become_a_dict_of_strings(pipe: Pipeline) -> None:
    pipe.task(lambda: None, name="t", outputs={"model": Path("models/m.pkl"), "html": "r.html"})
    assert pipe.tasks["t"].outputs == {"model": "models/m.pkl", "html": "r.html"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("data/raw.csv", ("data/raw.csv",)),
        (Path("data/raw.csv"), ("data/raw.csv",)),
        (["a.csv", Path("b.csv")], ("a.csv", "b.csv")),
    ],
)
def test_inputs_become_input_files(
    pipe: Pipeline, given: object, expected: tuple[str, ...]
) -> None:
    pipe.task(lambda: None, name="t", inputs=given)
    assert pipe.tasks["t"].input_files == expected


def test_map_over_names_a_parameter(pipe: Pipeline) -> None:
    @pipe.task(map_over="partitions")
    def load(partitions: list[str]) -> None: ...

    assert pipe.tasks["load"].map_over == "partitions"


def test_version_is_kept_as_a_string(pipe: Pipeline) -> None:
    pipe.task(lambda: None, name="t", version=2)
    assert pipe.tasks["t"].version == "2"


def test_defaults_apply_to_every_task_and_a_task_overrides_them() -> None:
    pipe = Pipeline(
        "p", defaults={"retries": Retry(3, backoff=0.5), "timeout": "1m", "cache": False}
    )
    pipe.task(lambda: None, name="plain")
    pipe.task(lambda: None, name="special", retries=0, cache=True)
    plain, special = pipe.tasks["plain"], pipe.tasks["special"]
    assert plain.retry == Retry(3, backoff=0.5)
    assert plain.timeout == 60.0
    assert plain.cache is False
    assert special.retry == Retry(0)
    assert special.timeout == 60.0
    assert special.cache is True


def test_pipeline_keeps_params_and_description() -> None:
    pipe = Pipeline("p", params={"threshold": 0.5}, description="about")
    assert pipe.params == {"threshold": 0.5}
    assert pipe.description == "about"


@pytest.mark.parametrize("name", ["churn", "churn-v2", "prices.daily", "_x", "0day", "a" * 100])
def test_valid_pipeline_names(name: str) -> None:
    assert Pipeline(name).name == name


# -- shell tasks -----------------------------------------------------------------------------


def test_shell_task_spec(pipe: Pipeline) -> None:
    pipe.task(lambda: None, name="train")
    spec = pipe.shell(
        "report",
        "python report.py {inputs.train} {inputs[1]} {outputs.html}",
        inputs=["train", "data/extra.csv"],
        outputs={"html": "report.html"},
        retries=2,
        timeout="5m",
    )
    assert pipe.tasks["report"] is spec
    assert spec.kind == "shell"
    assert spec.fn is None
    assert spec.args == ()
    assert spec.command == "python report.py {inputs.train} {inputs[1]} {outputs.html}"
    assert spec.shell_inputs == ("train", "data/extra.csv")
    assert spec.outputs == {"html": "report.html"}
    assert spec.retry == Retry(2)
    assert spec.timeout == 300.0
    node = pipe.graph().nodes["report"]
    assert node.inputs == ("train",)
    assert node.input_files == ("data/extra.csv",)
    assert node.upstream == ("train",)


def test_shell_task_with_a_single_input_string(pipe: Pipeline) -> None:
    spec = pipe.shell("s", "cat {inputs[0]}", inputs="data.csv")
    assert spec.shell_inputs == ("data.csv",)


@pytest.mark.parametrize("command", ["", "   ", None])
def test_shell_task_needs_a_command(pipe: Pipeline, command: Any) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.shell("s", command)
    message = _option_error(excinfo, "command")
    assert repr(command) in message
    assert excinfo.value.task == "s"
    assert "s" not in pipe.tasks


def test_shell_task_name_is_checked(pipe: Pipeline) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.shell("make report", "echo hi")
    assert "'make report'" in _option_error(excinfo, "name")


def test_shell_task_unknown_option(pipe: Pipeline) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.shell("s", "echo hi", retry=3)
    assert "'retry'" in _option_error(excinfo, "retry")


def test_shell_task_duplicate(pipe: Pipeline) -> None:
    pipe.shell("s", "echo hi")
    with pytest.raises(DuplicateTaskError):
        pipe.shell("s", "echo again")


# -- definition errors -----------------------------------------------------------------------


def test_duplicate_task(pipe: Pipeline) -> None:
    @pipe.task
    def clean() -> None: ...

    original = pipe.tasks["clean"]
    with pytest.raises(DuplicateTaskError) as excinfo:

        @pipe.task(name="clean")
        def clean_again() -> None: ...

    exc = excinfo.value
    assert type(exc) is DuplicateTaskError
    assert isinstance(exc, DefinitionError)
    assert exc.pipeline == "demo"
    assert exc.task == "clean"
    message = str(exc)
    assert "'clean'" in message and "'demo'" in message
    assert "Rename" in message and "name=" in message  # the fix
    assert pipe.tasks["clean"] is original  # the first one stands


@pytest.mark.parametrize("retries", [-1, -10])
def test_negative_retries(pipe: Pipeline, retries: int) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", retries=retries)
    message = _option_error(excinfo, "retries")
    assert excinfo.value.value == retries
    assert excinfo.value.task == "t" and excinfo.value.pipeline == "demo"
    assert f"retries={retries!r}" in message
    assert "positive" in message
    assert "t" not in pipe.tasks


@pytest.mark.parametrize("retries", [True, 1.5, "3", None, [3]])
def test_retries_of_the_wrong_type(pipe: Pipeline, retries: object) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", retries=retries)
    message = _option_error(excinfo, "retries")
    assert repr(retries) in message
    assert "Retry(" in message


@pytest.mark.parametrize("timeout", ["ten minutes", -1, 0, "0s", "0", "10x", "", [10]])
def test_unparseable_timeout(pipe: Pipeline, timeout: object) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", timeout=timeout)
    message = _option_error(excinfo, "timeout")
    assert excinfo.value.value == timeout
    assert f"timeout={timeout!r}" in message
    assert "'10m'" in message or "positive" in message  # how to write one


@pytest.mark.parametrize("timeout", [True, False])
def test_boolean_timeout(pipe: Pipeline, timeout: bool) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", timeout=timeout)
    assert f"timeout={timeout!r}" in _option_error(excinfo, "timeout")


def test_timeout_message_shows_the_accepted_forms(pipe: Pipeline) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", timeout="ten minutes")
    assert "'30s'" in str(excinfo.value) and "'10m'" in str(excinfo.value)


@pytest.mark.parametrize("cache", ["yes", None, "intervals", 2])
def test_bad_cache_policy(pipe: Pipeline, cache: object) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", cache=cache)
    message = _option_error(excinfo, "cache")
    assert repr(cache) in message
    assert "'interval'" in message


@pytest.mark.parametrize("cache", [0, 0.0])
def test_cache_zero_is_rejected_or_means_false(pipe: Pipeline, cache: object) -> None:
    try:
        pipe.task(lambda: None, name="t", cache=cache)
    except InvalidOptionError:
        return
    assert pipe.tasks["t"].cache is False


def test_unknown_trigger_rule(pipe: Pipeline) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", trigger_rule="all_sucess")
    message = _option_error(excinfo, "trigger_rule")
    assert excinfo.value.value == "all_sucess"
    assert "'all_sucess'" in message
    for rule in TRIGGER_RULES:
        assert rule in message


@pytest.mark.parametrize("rule", [["all_done"], {"rule": "all_done"}])
def test_unhashable_trigger_rule(pipe: Pipeline, rule: object) -> None:
    with pytest.raises(InvalidOptionError):
        pipe.task(lambda: None, name="t", trigger_rule=rule)


def test_unknown_option(pipe: Pipeline) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", retry=3)
    message = _option_error(excinfo, "retry")
    assert excinfo.value.value == 3
    assert excinfo.value.task == "t"
    assert "'retry'" in message
    assert "retries" in message  # the valid options are listed


@pytest.mark.parametrize("after", [[1], ["a", None]])
def test_after_must_be_task_names(pipe: Pipeline, after: object) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", after=after)
    message = _option_error(excinfo, "after")
    assert repr(after) in message and "task names" in message


@pytest.mark.parametrize("option", ["after", "inputs"])
def test_after_and_inputs_that_are_not_iterable(pipe: Pipeline, option: str) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", **{option: 5})
    assert "5" in _option_error(excinfo, option)


@pytest.mark.parametrize(
    "outputs", [["model.pkl"], {"bad name": "m.pkl"}, {"model": 3}, {1: "m.pkl"}, "m.pkl"]
)
def test_outputs_must_be_a_dict_of_paths(pipe: Pipeline, outputs: object) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", outputs=outputs)
    message = _option_error(excinfo, "outputs")
    assert repr(outputs) in message
    assert "dict" in message


@pytest.mark.parametrize("inputs", [[1], ["a.csv", None]])
def test_inputs_must_be_paths(pipe: Pipeline, inputs: object) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(lambda: None, name="t", inputs=inputs)
    assert repr(inputs) in _option_error(excinfo, "inputs")


@pytest.mark.parametrize(
    "name", ["my task", "1st", "clean-data", "a.b", "naïve", "ok\n", 3, None]
)
def test_invalid_task_name(pipe: Pipeline, name: Any) -> None:
    def fn() -> None: ...

    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(fn, name=name) if name is not None else pipe.task(lambda: None)
    message = _option_error(excinfo, "name")
    shown = name if name is not None else "<lambda>"
    assert repr(shown) in message
    assert "Python identifier" in message
    assert excinfo.value.pipeline == "demo"


@pytest.mark.parametrize(
    "name", ["", "my pipeline", "a/b", ".hidden", "-flag", "a" * 101, "tab\t", 7, None]
)
def test_invalid_pipeline_name(name: Any) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        Pipeline(name)
    message = _option_error(excinfo, "name")
    assert excinfo.value.value == name
    assert repr(name) in message
    assert "letters, digits" in message


def test_invalid_param_name() -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        Pipeline("p", params={"bad-name": 1})
    message = _option_error(excinfo, "params")
    assert "'bad-name'" in message and "identifier" in message


def test_map_over_not_a_parameter(pipe: Pipeline) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:

        @pipe.task(map_over="partition")
        def load(partitions: list[str]) -> None: ...

    message = _option_error(excinfo, "map_over")
    assert excinfo.value.value == "partition"
    assert excinfo.value.task == "load"
    assert "'partition'" in message and "['partitions']" in message
    assert "upstream task" in message


@pytest.mark.parametrize(
    "source",
    [
        "def t(*args): pass",
        "def t(**kwargs): pass",
        "def t(a, /): pass",
        "def t(a, *rest, b): pass",
    ],
)
def test_star_args_signature(pipe: Pipeline, source: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(namespace["t"])
    message = _option_error(excinfo, "signature")
    assert excinfo.value.task == "t"
    assert "plain" in message and "named" in message
    assert "t" not in pipe.tasks


def test_decorating_something_not_callable(pipe: Pipeline) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        pipe.task(42)
    assert "42" in _option_error(excinfo, "fn")


def test_defaults_with_an_unknown_key() -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        Pipeline("p", defaults={"retry": 3})
    message = _option_error(excinfo, "retry")
    assert excinfo.value.value == 3
    assert excinfo.value.pipeline == "p"
    assert "'retry'" in message and "defaults" in message
    assert "retries" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("after", ["a"]),
        ("outputs", {"m": "m.pkl"}),
        ("inputs", ["a.csv"]),
        ("map_over", "xs"),
        ("version", "1"),
    ],
)
def test_defaults_cannot_set_per_task_options(key: str, value: object) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        Pipeline("p", defaults={key: value})
    message = _option_error(excinfo, key)
    assert repr(key) in message and "one task" in message


def test_defaults_with_a_bad_value() -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        Pipeline("p", defaults={"retries": -1})
    assert "retries=-1" in _option_error(excinfo, "retries")
    assert excinfo.value.pipeline == "p"


def test_defaults_with_a_bad_value_names_no_task() -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        Pipeline("p", defaults={"retries": -1})
    assert excinfo.value.task is None
    assert "<defaults>" not in str(excinfo.value)
