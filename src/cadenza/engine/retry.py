"""The retry policy: how many attempts, how long between them, and for which errors."""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass, field

from cadenza.exceptions import InvalidOptionError


@dataclass(frozen=True)
class Retry:
    """How a failed attempt is tried again. ``Retry(3, backoff=0.5)`` allows 3 retries."""

    attempts: int = 0
    """Retries after the first attempt: 0 never retries, 3 allows up to 4 attempts in all."""
    backoff: float = 1.0
    """Seconds to wait before the first retry."""
    factor: float = 2.0
    """Each later wait is the previous one times this (1 keeps it constant)."""
    max_delay: float | None = None
    """No wait is longer than this many seconds."""
    jitter: float = 0.0
    """Up to this fraction of each wait is added at random, so retries of many tasks spread."""
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    """Only these exception types are retried; any other fails at once."""
    non_retryable: tuple[type[BaseException], ...] = field(default=())
    """These fail at once even when ``retry_on`` matches them."""

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        def bad(option: str, value: object, rule: str) -> InvalidOptionError:
            return InvalidOptionError(
                f"Retry {option}={value!r} is invalid: {rule}.", option=option, value=value
            )

        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise bad("attempts", self.attempts, "give a whole number of retries, like 3")
        if self.attempts < 0:
            raise bad("attempts", self.attempts, "give 0 for no retries or a positive number")
        for name in ("backoff", "factor"):
            if not _seconds(getattr(self, name)):
                raise bad(name, getattr(self, name), "give a finite number of 0 or more")
        if self.factor < 1:
            raise bad("factor", self.factor, "give 1 for a constant wait, or more to grow it")
        if self.max_delay is not None and not _seconds(self.max_delay):
            raise bad("max_delay", self.max_delay, "give finite seconds, 0 or more, or None")
        if not _seconds(self.jitter) or self.jitter > 1:
            raise bad("jitter", self.jitter, "give a fraction between 0 and 1")
        for name in ("retry_on", "non_retryable"):
            types = getattr(self, name)
            if not isinstance(types, tuple) or not all(
                isinstance(t, type) and issubclass(t, BaseException) for t in types
            ):
                raise bad(name, types, "give a tuple of exception classes")

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry)."""
        try:
            wait = self.backoff * self.factor ** (retry_number - 1)
        except OverflowError:  # a very late retry of a growing wait: the cap decides
            wait = math.inf
        if self.max_delay is not None:
            wait = min(wait, self.max_delay)
        if self.jitter:
            wait += wait * self.jitter * (rng or random).random()
        return min(wait, sys.float_info.max)

    def allows(self, error: BaseException, attempt: int) -> bool:
        """True if ``error`` on attempt number ``attempt`` (1-based) earns another attempt."""
        return (
            attempt <= self.attempts
            and isinstance(error, self.retry_on)
            and not isinstance(error, self.non_retryable)
        )


def _seconds(value: object) -> bool:
    """A real, finite, non-negative number (NaN and infinity are not)."""
    return (
        isinstance(value, int | float) and not isinstance(value, bool)
        and math.isfinite(value) and value >= 0
    )


NO_RETRY = Retry()
