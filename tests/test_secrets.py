"""A secret never reaches disk or output: it is *** in logs, events, errors and listings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza import secrets
from cadenza.cli import main
from cadenza.exceptions import CadenzaError

TOKEN = "tok-7f3a9c2e41"
DB_PASSWORD = "hunter2-from-dotenv"

PIPELINE = '''
import logging
from cadenza import Param, Pipeline, Retry, ctx
from cadenza.secrets import secret

pipe = Pipeline("secretive", params={
    "token": Param(secret("API_TOKEN"), secret=True, description="the API token"),
    "region": "eu",
})

@pipe.task(retries=Retry(1, backoff=0), cache=False)
def call_api(token: str, region: str) -> int:
    password = secret("DB_PASSWORD")
    print(f"calling with {token} in {region}")
    ctx.log.info("password is %s", password)
    logging.getLogger("user.code").warning("token %s", token)
    if ctx.attempt == 1:
        raise ConnectionError(f"401 for token {token}")
    return len(token)

@pipe.task
def fail_loudly(call_api: int, token: str) -> None:
    raise ValueError(f"bad token {token}")
'''


def test_no_secret_reaches_disk_or_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"DB_PASSWORD={DB_PASSWORD}\n")
    (tmp_path / "pipe.py").write_text(PIPELINE)
    runner = CliRunner()
    outputs = []
    for args in (["run", "pipe.py", "-e", "inline"], ["run", "pipe.py", "--json"],
                 ["plan", "pipe.py"], ["plan", "pipe.py", "--json"],
                 ["show", "pipe.py", "-f", "markdown"], ["show", "pipe.py", "-f", "json"],
                 ["runs", "--json"]):
        result = runner.invoke(main, args, catch_exceptions=False)
        outputs.append(result.output)
    run_id = json.loads(runner.invoke(main, ["runs", "--json"]).output)[0]["run_id"]
    for args in (["status", run_id], ["status", run_id, "--json"], ["logs", run_id]):
        outputs.append(runner.invoke(main, args, catch_exceptions=False).output)
    everything = "\n".join(outputs)
    assert "***" in everything
    assert "calling with *** in eu" in everything
    assert "bad token ***" in everything
    for value in (TOKEN, DB_PASSWORD):
        assert value not in everything
        for path in (tmp_path / ".cadenza").rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path


def test_mask_and_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT", "abc")
    with pytest.raises(CadenzaError, match="at least 4 characters"):
        secrets.secret("SHORT")
    with pytest.raises(CadenzaError, match="Secret 'NOT_SET_ANYWHERE' is not set"):
        secrets.secret("NOT_SET_ANYWHERE")
    secrets.register("s3cr3t-value")
    assert secrets.mask("a s3cr3t-value b") == "a *** b"
    assert secrets.mask_data({"k": ["s3cr3t-value", 1]}) == {"k": ["***", 1]}
    assert secrets.masked_params({"t": "x", "u": 1}, ["t"]) == {"t": "***", "u": 1}
