"""Words that agree with their numbers, and names of attempts, for every message the CLI and
the UI print."""

from __future__ import annotations

_SIBILANT = ("s", "x", "z", "ch", "sh")


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and ``noun`` in agreement: '1 retry', '2 retries', '0 tasks', '1200 rows'.

    ``many`` is the plural where the English rule is wrong for it (e.g. 'data')."""
    return f"{count} {noun if count == 1 else (many or plural_of(noun))}"


def plural_of(noun: str) -> str:
    """The regular English plural: retry -> retries, pass -> passes, day -> days."""
    if noun.endswith("y") and noun[-2:-1] not in ("", *"aeiou"):
        return noun[:-1] + "ies"
    if noun.endswith(_SIBILANT):
        return noun + "es"
    return noun + "s"


def attempt_label(map_index: int, attempt: int) -> str:
    """How an attempt is named to a person: ``item 3 · attempt 1``, or ``attempt 1`` for a
    task that is not mapped (``map_index`` -1)."""
    return f"item {map_index} · attempt {attempt}" if map_index >= 0 else f"attempt {attempt}"
