"""`cadenza ui` shows a login link only for a token it made itself, reads a token from a file,
warns that a --token on the command line is visible in ps, and beyond loopback refuses short
tokens and empty passwords."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from tests.security._http import bearer, call
from tests.security.conftest import DEMO, TOKEN
from tests.web._server import serve

from cadenza.cli import main
from cadenza.web.security import hash_password


def test_a_token_from_the_environment_is_never_printed(tmp_path: Path) -> None:
    with serve(tmp_path / ".cadenza", DEMO, None, args=["--no-scheduler"],
               env={"CADENZA_UI_TOKEN": TOKEN}) as ui:
        assert call(ui.url, "GET", "/api/v1/runs", headers=bearer(TOKEN)).status == 200
        out = ui.output()
    assert TOKEN not in out and "log in at" not in out and "visible" not in out


def test_a_token_on_the_command_line_is_warned_about(tmp_path: Path) -> None:
    with serve(tmp_path / ".cadenza", DEMO, TOKEN, args=["--no-scheduler"]) as ui:
        out = ui.output()
    assert TOKEN not in out and "ps" in out and "--token-file" in out


def test_a_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with serve(tmp_path / ".cadenza", DEMO, None,
               args=["--no-scheduler", "--token-file", str(token_file)]) as ui:
        assert call(ui.url, "GET", "/api/v1/runs", headers=bearer(TOKEN)).status == 200
        out = ui.output()
    assert TOKEN not in out and "visible" not in out


def test_a_token_cadenza_made_is_shown_as_a_link(tmp_path: Path) -> None:
    with serve(tmp_path / ".cadenza", DEMO, None, args=["--no-scheduler"]) as ui:
        found = re.search(r"log in at http://localhost:\d+/\?token=(\S+)", ui.output())
        assert found is not None, ui.output()
        assert call(ui.url, "GET", "/api/v1/runs", headers=bearer(found[1])).status == 200


def _ui(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--home", str(tmp_path / ".cadenza"), "ui", DEMO,
                                       "--no-scheduler", *args], env=env)
    return result.exit_code, result.output


def test_beyond_loopback_a_token_needs_32_characters(tmp_path: Path) -> None:
    code, out = _ui(tmp_path, "--host", "0.0.0.0", env={"CADENZA_UI_TOKEN": "x" * 31})
    assert code == 2 and "at least 32" in out and "x" * 31 not in out


def test_beyond_loopback_a_password_must_not_be_empty(tmp_path: Path) -> None:
    code, out = _ui(tmp_path, "--host", "0.0.0.0", "--user", "ada", env={
        "CADENZA_UI_TOKEN": "x" * 40, "CADENZA_UI_PASSWORD_HASH": hash_password("", n=2**14)})
    assert code == 2 and "'ada' is empty" in out


def test_a_token_and_a_token_file_are_one_too_many(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    code, out = _ui(tmp_path, "--token-file", str(token_file), env={"CADENZA_UI_TOKEN": TOKEN})
    assert code == 2 and "not both" in out
    token_file.write_text("\n")
    code, out = _ui(tmp_path, "--token-file", str(token_file))
    assert code == 2 and "is empty" in out


def test_hash_password_refuses_an_empty_password(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "ui", "--hash-password"],
                                input="\n\n")
    assert result.exit_code == 2 and "empty password" in result.output
