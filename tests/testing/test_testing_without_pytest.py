"""cadenza.testing works where pytest is not installed; only the contract suites need it."""

from __future__ import annotations

import subprocess
import sys

# A real interpreter in which `import pytest` fails, as on a machine without it.
NO_PYTEST = "import sys; sys.modules['pytest'] = None\n"


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", NO_PYTEST + code],
                          capture_output=True, text=True, timeout=60)


def test_run_in_memory_needs_no_pytest() -> None:
    done = python(
        "from cadenza import Pipeline\n"
        "from cadenza.testing import run_in_memory\n"
        "pipe = Pipeline('p')\n"
        "pipe.task(lambda: 2, name='two')\n"
        "print(run_in_memory(pipe).output('two'))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"


def test_the_contract_suites_say_how_to_get_pytest() -> None:
    done = python("import cadenza.testing.contracts\n")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("ImportError: cadenza.testing.contracts is a pytest suite and pytest is "
                    "not installed. Install it with: pip install 'cadenza[testing]'")
