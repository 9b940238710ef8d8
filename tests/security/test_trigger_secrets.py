"""A secret param given at trigger time (the API, the UI's form, `cadenza run -p`, a backfill)
reaches the task when a runner starts the run later, and stays masked everywhere: stored
sealed (Fernet, docs/secrets.md), shown as ***, never in cadenza.db in clear nor with its key
(issue 13, leak 5)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from tests.security._http import bearer, call
from tests.web._server import SRC, serve

from cadenza import actions
from cadenza.engine.cache import hide
from cadenza.secrets import KEY_ENV, KEY_FILE, MASK, is_sealed
from cadenza.workspace import Workspace

TOKEN = "trigger-secrets-token-0123456789abcdef"
PASSWORD = f"given-pw-{os.getpid()}-sesame"
PIN = 987654321

PIPELINE = '''
import hashlib
import os
from pathlib import Path

from cadenza import Param, Pipeline

def alert(event: object) -> None:
    with open(os.environ["SEEN_FILE"] + ".alerts", "a") as out:
        out.write(repr(event) + "\\n")

pipe = Pipeline("vault", {schedule}on_failure=alert, on_success=alert, params={
    "password": Param("default-pw-0000", secret=True),
    "pin": Param(111111111, secret=True),
    "size": 3,
})

@pipe.task
def keyed(password: str, size: int) -> int:
    return len(password) + size

@pipe.task(cache=False)
def use(keyed: int, password: str, pin: int) -> None:
    print("using", password, "and", pin, "pin as json", [pin])
    seen = hashlib.sha256(f"{password}|{pin!r}".encode()).hexdigest()
    Path(os.environ["SEEN_FILE"]).write_text(seen)
    if Path(os.environ["SEEN_FILE"] + ".fail").exists():
        raise RuntimeError(f"refused {password}")
'''


def digest(password: str, pin: int) -> str:
    return hashlib.sha256(f"{password}|{pin!r}".encode()).hexdigest()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """vault.py (no schedule: the scheduler starts only what is triggered) and daily.py."""
    (tmp_path / "vault.py").write_text(PIPELINE.replace("{schedule}", ""))
    (tmp_path / "daily.py").write_text(PIPELINE.replace("{schedule}", 'schedule="@daily", '))
    monkeypatch.setenv("SEEN_FILE", str(tmp_path / "seen"))
    monkeypatch.delenv(KEY_ENV, raising=False)
    return tmp_path


def cadenza(project: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m cadenza --home PROJECT/.cadenza ARGS` in a process of its own."""
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    if key is not None:
        env[KEY_ENV] = key
    return subprocess.run([sys.executable, "-m", "cadenza", "--home", str(project / ".cadenza"),
                           *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=120)


def store_bytes(home: Path) -> bytes:
    """cadenza.db as on disk, with its write-ahead log."""
    return b"".join(p.read_bytes() for p in home.glob("cadenza.db*") if p.is_file())


def logs_text(home: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (home / "logs").rglob("*")
                   if p.is_file())


def assert_hidden(text: str | bytes, *extra: str) -> None:
    """Neither the given secrets (in any printed form) nor ``extra`` (a key) is in ``text``."""
    data = text.encode() if isinstance(text, str) else text
    for form in (PASSWORD, str(PIN), *extra):
        assert form.encode() not in data, f"{form!r} leaked"


def status_json(project: Path, run_id: str) -> dict[str, object]:
    shown = cadenza(project, "status", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    found: dict[str, object] = json.loads(shown.stdout)
    return found


def the_key(home: Path) -> str:
    path = home / KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    return path.read_text().strip()


def test_api_trigger_reaches_the_task_and_stays_masked(project: Path) -> None:
    home = project / ".cadenza"
    with serve(home, str(project / "vault.py"), TOKEN,
               env={"SEEN_FILE": str(project / "seen")}) as ui:
        sent = call(ui.url, "POST", "/api/v1/pipelines/vault/runs", headers=bearer(TOKEN),
                    json_body={"params": {"password": PASSWORD, "pin": PIN}})
        assert sent.status == 200, sent.body
        run_id = sent.json()["run_id"]
        deadline = time.monotonic() + 60
        while True:  # the UI's scheduler starts the queued run
            detail = call(ui.url, "GET", f"/api/v1/runs/{run_id}", headers=bearer(TOKEN))
            if detail.json()["state"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, ui.output()
            time.sleep(0.2)
        assert detail.json()["state"] == "success", detail.body
        assert detail.json()["params"] == {"password": MASK, "pin": MASK, "size": 3}
        events = call(ui.url, "GET", f"/api/v1/events?run_id={run_id}", headers=bearer(TOKEN))
        log = call(ui.url, "GET", f"/api/v1/runs/{run_id}/tasks/use/attempts/1/log",
                   headers=bearer(TOKEN))
        answers = detail.body + events.body + log.body
        output = ui.output()
    assert (project / "seen").read_text() == digest(PASSWORD, PIN)
    assert b"using *** and *** pin as json [***]" in log.body
    key = the_key(home)
    status = status_json(project, run_id)
    assert status["params"] == {"password": MASK, "pin": MASK, "size": 3}
    assert_hidden(store_bytes(home), key)
    for shown in (answers, output, logs_text(home), json.dumps(status)):
        assert_hidden(shown, key)


def test_a_form_trigger_parses_the_secret_by_its_type(project: Path) -> None:
    """The UI's form sends text: the pin is parsed as an int before it is sealed."""
    home = project / ".cadenza"
    with serve(home, str(project / "vault.py"), TOKEN, args=["--no-scheduler"]) as ui:
        sent = call(ui.url, "POST", "/api/v1/pipelines/vault/runs",
                    headers={**bearer(TOKEN),
                             "Content-Type": "application/x-www-form-urlencoded"},
                    body=f"param.password={PASSWORD}&param.pin={PIN}".encode())
        assert sent.status == 303, sent.body
    run_id = sent.headers["location"].rsplit("/", 1)[-1]
    assert_hidden(store_bytes(home), the_key(home))
    ran = cadenza(project, "run", "--resume", run_id, "-e", "processes")  # opened, then sent
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (project / "seen").read_text() == digest(PASSWORD, PIN)
    assert "using *** and *** pin as json [***]" in logs_text(home)
    assert_hidden(ran.stdout + ran.stderr + logs_text(home), the_key(home))


def test_cli_param_survives_a_resume(project: Path) -> None:
    """`cadenza run -p` seals the given secret: a failed run resumed later uses it again, and
    the cache key is the one a run given the same value directly has."""
    home = project / ".cadenza"
    fail = project / "seen.fail"
    fail.write_text("")
    first = cadenza(project, "run", "vault.py", "-p", f"password={PASSWORD}",
                    "-p", f"pin={PIN}", "--json")
    assert first.returncode != 0
    run_id = json.loads(first.stdout)["run_id"]
    assert "refused ***" in first.stdout
    fail.unlink()
    (project / "seen").unlink()
    again = cadenza(project, "run", "--resume", run_id, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (project / "seen").read_text() == digest(PASSWORD, PIN)
    key = the_key(home)
    alerts = (project / "seen.alerts").read_text()
    assert "refused ***" in alerts and "run_finished" in alerts
    for shown in (first.stdout + first.stderr, again.stdout + again.stderr, logs_text(home),
                  json.dumps(status_json(project, run_id)), alerts):
        assert_hidden(shown, key)
    assert_hidden(store_bytes(home), key)
    # a queued run given the same password reuses keyed's output: its key hides the same value
    queued = trigger(project, {"password": PASSWORD})
    started = cadenza(project, "scheduler", "vault.py", "--once")
    assert started.returncode == 0, started.stdout + started.stderr
    tasks = {t["task"]: t["state"] for t in status_json(project, queued)["tasks"]}  # type: ignore
    assert tasks == {"keyed": "cached", "use": "success"}
    assert (project / "seen").read_text() == digest(PASSWORD, 111111111)
    ws = Workspace.open(home)
    try:
        entries = ws.store.cache_entries("vault", "keyed")
    finally:
        ws.close()
    assert [e.run_id for e in entries] == [run_id]
    assert entries[0].meta["params"]["password"] == hide(PASSWORD)


def trigger(project: Path, params: dict[str, object]) -> str:
    """Queue a run as the API does, in this process, on the project's store."""
    from cadenza._loader import load_pipeline

    ws = Workspace.open(project / ".cadenza")
    try:
        target = str(project / "vault.py")
        return actions.trigger(ws.store, load_pipeline(target), params, target=target,
                               home=ws.home)
    finally:
        ws.close()


def test_backfill_runs_get_the_given_secret(project: Path) -> None:
    home = project / ".cadenza"
    done = cadenza(project, "backfill", "daily.py", "--start", "2026-01-01",
                   "--end", "2026-01-02", "-p", f"password={PASSWORD}", "-p", f"pin={PIN}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project / "seen").read_text() == digest(PASSWORD, PIN)
    assert_hidden(done.stdout + done.stderr + logs_text(home), the_key(home))
    assert_hidden(store_bytes(home), the_key(home))


def test_another_key_fails_the_run_in_one_line(project: Path) -> None:
    """A host without the trigger's key: the run fails to start, saying which param and what
    to set; never the default. With the right key, a retry runs it with the given value."""
    home = project / ".cadenza"
    mine, other = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    os.environ[KEY_ENV] = mine
    try:
        run_id = trigger(project, {"password": PASSWORD, "pin": PIN})
    finally:
        del os.environ[KEY_ENV]
    assert is_sealed(_stored(home, run_id)["password"])
    assert not (home / KEY_FILE).exists()  # the key came from the environment
    for args in (("run", "--resume", run_id), ("scheduler", "vault.py", "--once")):
        refused = cadenza(project, *args, key=other)
        lines = [line for line in (refused.stdout + refused.stderr).splitlines()
                 if "Secret param" in line]
        assert len(lines) == 1, refused.stdout + refused.stderr
        assert "'password'" in lines[0] and KEY_ENV in lines[0]
        assert "Traceback" not in refused.stdout + refused.stderr
        assert not (project / "seen").exists()
        assert_hidden(refused.stdout + refused.stderr, mine, other)
        if args[0] == "run":
            assert refused.returncode != 0
            assert status_json(project, run_id)["state"] == "failed"
            assert cadenza(project, "retry", run_id, key=other).returncode != 0
            assert_hidden(store_bytes(home), mine)
            ws = Workspace.open(home)
            try:  # queued again, for the scheduler
                actions.retry(ws.store, run_id)
            finally:
                ws.close()
    no_key = cadenza(project, "run", "--resume", run_id)
    assert no_key.returncode != 0 and KEY_ENV in no_key.stdout + no_key.stderr
    ran = cadenza(project, "run", "--resume", run_id, key=mine)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (project / "seen").read_text() == digest(PASSWORD, PIN)
    assert_hidden(store_bytes(home), mine)


def test_no_cryptography_unless_a_secret_is_given(project: Path) -> None:
    """A run whose secret params take their defaults seals nothing: no key, no import."""
    code = ("import sys; from cadenza.engine.launch import run_pipeline; "
            "from cadenza._loader import load_pipeline; "
            "result = run_pipeline(load_pipeline('vault.py'), {'size': 4}, home='.cadenza'); "
            "print(result.state, 'cryptography' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    ran = subprocess.run([sys.executable, "-c", code], cwd=project, env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.stdout.split() == ["success", "False"], ran.stdout + ran.stderr
    assert not (project / ".cadenza" / KEY_FILE).exists()
    assert (project / "seen").read_text() == digest("default-pw-0000", 111111111)


def test_a_malformed_key_is_one_line(project: Path) -> None:
    run_id = trigger(project, {"password": PASSWORD})
    bad = cadenza(project, "run", "--resume", run_id, key="not-a-fernet-key-0123")
    assert bad.returncode != 0
    said = (bad.stdout + bad.stderr).strip()
    assert len(said.splitlines()) == 1 and KEY_ENV in said and "Fernet" in said, said
    assert "not-a-fernet-key-0123" not in said


def _stored(home: Path, run_id: str) -> dict[str, object]:
    ws = Workspace.open(home)
    try:
        return ws.store.get_run(run_id).params
    finally:
        ws.close()
