"""The `cadenza` command. Exit codes: 0 success, 1 a run did not succeed, 2 bad input."""

from cadenza.cli import init, look, observe, operate, run, schedule, ui  # noqa: F401 - each registers its commands
from cadenza.cli._base import main

__all__ = ["main"]
