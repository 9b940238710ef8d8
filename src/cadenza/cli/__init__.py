"""The `cadenza` command. Exit codes: 0 success, 1 a run did not succeed, 2 bad input."""

from cadenza.cli._base import main  # each command's module is imported when it is used

__all__ = ["main"]
