"""What cadenza creates under a store is private whatever the umask (cadenza/_files.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

PIPELINE = '''
from cadenza import Pipeline
pipe = Pipeline("private")

@pipe.task
def big() -> list[int]:
    print("a line for the log")
    return list(range(40000))  # over 16 KiB: an artifact file
'''


def modes(home: Path) -> dict[str, int]:
    return {str(p.relative_to(home)): stat.S_IMODE(p.stat().st_mode) for p in home.rglob("*")}


def run_with_umask(tmp_path: Path, umask: int) -> Path:
    (tmp_path / "p.py").write_text(PIPELINE)
    code = (f"import os, sys; os.umask({umask:#o}); from cadenza.cli import main; "
            "main(['--home', sys.argv[1], 'run', sys.argv[2], '-e', 'inline', '-q'])")
    home = tmp_path / ".cadenza"
    done = subprocess.run([sys.executable, "-c", code, str(home), str(tmp_path / "p.py")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return home


def test_under_umask_000_the_store_logs_and_artifacts_are_owner_only(tmp_path: Path) -> None:
    home = run_with_umask(tmp_path, 0o000)
    found = modes(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert any(name.endswith(".log") for name in found)
    assert any(name.startswith("artifacts/") and len(name) > 40 for name in found)
    for name, mode in found.items():
        expected = 0o700 if (home / name).is_dir() else 0o600
        assert mode == expected, f"{name}: {mode:o}"


def test_a_store_opened_to_a_group_keeps_new_files_open_to_it(tmp_path: Path) -> None:
    home = tmp_path / ".cadenza"
    home.mkdir()
    os.chmod(home, 0o2770)  # the team's decision, made once on the store's folder
    run_with_umask(tmp_path, 0o000)
    for name, mode in modes(home).items():
        expected = 0o2770 if (home / name).is_dir() else 0o660
        assert mode == expected, f"{name}: {mode:o}"
