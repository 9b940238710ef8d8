"""Secrets stay *** wherever a task can put them: shell output, errors raised in a worker
process, non-text secret params, a secret printed in pieces (issue 13's five leaks, less the
one about trigger-time params)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza.cli import main

EXECUTORS = ["inline", "threads", "processes"]

PIPELINE = '''
import os
import sys
from cadenza import Param, Pipeline, ctx
from cadenza.secrets import secret

pipe = Pipeline("leaky", params={
    "password": Param("pw-{tag}-sesame", secret=True),
    "pin": Param(987654321, secret=True),
})

pipe.shell("sh", "echo PW={params.password} done", cache=False)

@pipe.task(cache=False)
def pieces(password: str) -> int:
    half = len(password) // 2
    sys.stdout.write("got " + password[:half])
    sys.stdout.write(password[half:] + " ok\\n")
    return 1

@pipe.task(cache=False)
def number(pin: int) -> int:
    print("pin is", pin, "as json", [pin])
    return 2

@pipe.task(cache=False)
def worker_secret() -> None:
    key = secret("WORKER_ONLY_KEY")  # registered where the task runs, not in the runner
    raise RuntimeError(f"the service refused {key}")
'''


def everything_written(home: Path) -> bytes:
    found = b""
    for path in home.rglob("*"):
        if path.is_file():
            found += path.read_bytes()
    return found


@pytest.mark.parametrize("executor", EXECUTORS)
def test_no_form_of_a_secret_is_written_anywhere(tmp_path: Path, executor: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tag = f"{executor}{os.getpid()}"
    worker_key = f"wk-{tag}-0451"
    monkeypatch.setenv("WORKER_ONLY_KEY", worker_key)
    (tmp_path / "leaky.py").write_text(PIPELINE.replace("{tag}", tag))
    home = tmp_path / ".cadenza"
    runner = CliRunner()

    def cli(*args: str) -> str:
        return runner.invoke(main, ["--home", str(home), *args], catch_exceptions=False).output

    shown = cli("run", str(tmp_path / "leaky.py"), "-e", executor, "--json")
    result = json.loads(shown)
    assert result["tasks"]["worker_secret"]["state"] == "failed"
    assert "the service refused ***" in result["tasks"]["worker_secret"]["error"]
    run_id = result["run_id"]
    shown += cli("status", run_id, "--json") + cli("status", run_id)
    for task in ("sh", "pieces", "number", "worker_secret"):
        shown += cli("logs", run_id, task)
    assert "PW=*** done" in shown and "got *** ok" in shown and "pin is *** as json [***]" in shown
    written = everything_written(home)
    for value in (f"pw-{tag}-sesame", "987654321", worker_key):
        assert value not in shown, value
        assert value.encode() not in written, value


def test_a_secret_param_too_short_to_mask_is_refused(tmp_path: Path) -> None:
    from cadenza import Param, Pipeline
    from cadenza.exceptions import CadenzaError

    pipe = Pipeline("short", params={"n": Param(7, secret=True)})

    @pipe.task
    def use(n: int) -> int:
        return n

    with pytest.raises(CadenzaError, match="prints as '7'"):
        pipe.run(home=tmp_path / ".cadenza")
