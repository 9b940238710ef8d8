"""Gates: a run pauses at a gate for a person; approve lets it go on, reject fails it, and
other branches never wait."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza import Pipeline
from cadenza.cli import main
from cadenza.exceptions import InvalidOptionError
from cadenza.store.base import Approval
from cadenza.workspace import Workspace

GATED = '''
from cadenza import Pipeline
pipe = Pipeline("gated")

@pipe.task
def train() -> float:
    return 0.91

pipe.gate("promote", after=["train"], message="Promote this model?")

@pipe.task(after=["promote"])
def deploy(train: float) -> str:
    return f"deployed {train}"

@pipe.task
def report(train: float) -> str:
    return f"auc {train}"
'''


def gated() -> Pipeline:
    namespace: dict[str, object] = {}
    exec(GATED, namespace)
    pipe = namespace["pipe"]
    assert isinstance(pipe, Pipeline)
    return pipe


def states(result):  # type: ignore[no-untyped-def]
    return {name: t.state for name, t in result.tasks.items()}


def test_a_gate_pauses_its_branch_only(home: Path) -> None:
    result = gated().run(home=home)
    assert result.state == "waiting"
    assert states(result) == {"train": "success", "promote": "awaiting_approval",
                              "deploy": "pending", "report": "success"}
    events = [e.kind for e in Workspace.open(home).store.events(result.run_id)]
    assert "gate_opened" in events


def test_approve_then_resume_runs_the_rest(home: Path) -> None:
    pipe = gated()
    waiting = pipe.run(home=home)
    store = Workspace.open(home).store
    store.decide(Approval(waiting.run_id, "promote", True, "ana", time.time(), "looks good"))
    done = pipe.run(home=home, resume=waiting.run_id)
    assert done.ok, done
    assert done.output("deploy") == "deployed 0.91"
    assert done.output("promote") | {"at": 0} == {
        "approved": True, "by": "ana", "reason": "looks good", "at": 0}


def test_reject_fails_the_gate_and_blocks_downstream(home: Path) -> None:
    pipe = gated()
    waiting = pipe.run(home=home)
    Workspace.open(home).store.decide(
        Approval(waiting.run_id, "promote", False, "bo", time.time(), "auc too low"))
    done = pipe.run(home=home, resume=waiting.run_id)
    assert done.state == "failed"
    assert states(done)["promote"] == "failed"
    assert done.tasks["promote"].error == "rejected by bo: auc too low"
    assert states(done)["deploy"] == "upstream_failed"


def test_approve_up_front_and_a_waiting_run_that_gets_approved(home: Path) -> None:
    assert gated().run(home=home, approve=["promote"]).ok

    pipe = gated()
    store = Workspace.open(home).store

    def approve_soon() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for run in store.list_runs("gated", 1):
                if any(ti.state == "awaiting_approval" for ti in store.task_instances(run.run_id)):
                    store.decide(Approval(run.run_id, "promote", True, "cy", time.time()))
                    return
            time.sleep(0.05)

    helper = threading.Thread(target=approve_soon)
    helper.start()
    result = pipe.run(home=home, wait=True, force=True)
    helper.join()
    assert result.ok and result.tasks["promote"].state == "success"


def test_gates_take_no_code_options() -> None:
    pipe = Pipeline("g")
    with pytest.raises(InvalidOptionError, match="a gate runs no code"):
        pipe.gate("promote", retries=2)


def test_cli_approve_and_reject(home: Path, tmp_path: Path) -> None:
    (tmp_path / "gated.py").write_text(GATED)
    runner = CliRunner()

    def cli(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, ["--home", str(home), *args], catch_exceptions=False)

    first = cli("run", str(tmp_path / "gated.py"), "--no-wait", "--json")
    assert first.exit_code == 1
    run_id = json.loads(first.output)["run_id"]
    assert json.loads(first.output)["state"] == "waiting"
    wrong = cli("approve", run_id, "deploy")
    assert wrong.exit_code == 2
    assert "is not waiting for approval (it is pending). Gates waiting now: promote" in wrong.output
    ok = cli("approve", run_id, "promote", "--by", "dee", "--reason", "ship it")
    assert "promote approved by dee. Continue the run with: cadenza run --resume" in ok.output
    resumed = cli("run", "--resume", run_id, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.output)["tasks"]["deploy"]["state"] == "success"

    again = cli("run", str(tmp_path / "gated.py"), "--no-wait", "--json", "--force")
    run_id = json.loads(again.output)["run_id"]
    missing_reason = cli("reject", run_id, "promote")
    assert missing_reason.exit_code == 2 and "--reason" in missing_reason.output
    cli("reject", run_id, "promote", "--reason", "not now")
    resumed = cli("run", "--resume", run_id, "--json")
    assert resumed.exit_code == 1
    assert json.loads(resumed.output)["tasks"]["promote"]["error"].endswith(": not now")


def test_a_gate_approved_up_front_when_everything_before_it_is_cached(home: Path) -> None:
    assert gated().run(home=home, approve=["promote"]).ok
    again = gated().run(home=home, approve=["promote"])  # all settles before the first commit
    assert again.ok, again
    assert again.tasks["train"].state == "cached"


def test_an_approval_stands_for_the_same_inputs_and_not_for_new_ones(home: Path) -> None:
    first = gated().run(home=home)
    Workspace.open(home).store.decide(
        Approval(first.run_id, "promote", True, "ana", time.time(), "ok"))
    assert gated().run(home=home, resume=first.run_id).ok
    again = gated().run(home=home)  # the same model: approved before, so the gate is cached
    assert again.ok and again.tasks["promote"].state == "cached"
    changed = gated()
    changed.tasks["train"] = changed.tasks["train"].__class__(
        **{**changed.tasks["train"].__dict__, "version": "2", "fn": lambda: 0.95})
    changed._graph = None
    waiting = changed.run(home=home)  # a new model: a person decides again
    assert waiting.state == "waiting"
    forced = gated().run(home=home, force=True)
    assert forced.tasks["promote"].state == "awaiting_approval"
