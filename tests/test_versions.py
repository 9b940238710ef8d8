"""Versioned artifacts and the active alias: promote, load, roll back, from Python and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza import Pipeline
from cadenza.artifacts import active, load, promote, rollback, versions
from cadenza.cli import main
from cadenza.exceptions import CadenzaError


def model_pipeline(weight: float) -> Pipeline:
    pipe = Pipeline("models")

    @pipe.task(version=str(weight))
    def train() -> dict[str, float]:
        return {"weight": weight}

    return pipe


def test_promote_load_and_roll_back(home: Path) -> None:
    with pytest.raises(CadenzaError, match="has stored no 'return' output yet"):
        promote("models", "train", home=home)
    model_pipeline(1.0).run(home=home)
    first = promote("models", "train", home=home)
    model_pipeline(2.0).run(home=home)
    assert [v.hash for v in versions("models", "train", home=home)][1] == first
    second = promote("models", "train", home=home)
    assert load("models", "train", home=home) == {"weight": 2.0}
    assert rollback("models", "train", home=home) == first
    assert active("models", "train", home=home) == first
    assert load("models", "train", home=home) == {"weight": 1.0}
    assert load("models", "train", version=second[:8], home=home) == {"weight": 2.0}
    with pytest.raises(CadenzaError, match="matches no stored output"):
        promote("models", "train", "ffffffff", home=home)


def test_cli_artifacts(home: Path) -> None:
    model_pipeline(1.0).run(home=home)
    model_pipeline(2.0).run(home=home)
    runner = CliRunner()

    def cli(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, ["--home", str(home), "artifacts", *args],
                             catch_exceptions=False)

    listed = json.loads(cli("ls", "--pipeline", "models", "--task", "train", "--json").output)
    assert len(listed) == 2 and listed[0]["aliases"] == []
    assert "models.train active ->" in cli("tag", "models", "train").output
    listed = json.loads(cli("ls", "--json").output)
    assert listed[0]["aliases"] == ["active"]
    cli("tag", "models", "train", listed[1]["hash"][:10])
    rolled = cli("rollback", "models", "train")
    assert f"rolled back to {listed[0]['hash'][:12]}" in rolled.output
    shown = cli("show", listed[0]["hash"][:10]).output
    assert "models.train (return)" in shown and "'weight': 2.0" in shown
    never = runner.invoke(main, ["--home", str(home), "artifacts", "rollback", "models", "nope"])
    assert never.exit_code == 2 and "Pipeline 'models' has no task 'nope'" in never.output
