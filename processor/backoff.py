"""Capped exponential back-off with jitter, and the retry loops that use it (async and blocking)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

_rng = random.SystemRandom()


def backoff_delay(attempt: int, *, base: float = 0.2, cap: float = 30.0) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): ``base·2^attempt``, capped, with
    "equal jitter" (50-100 % of the step) so many retriers do not retry in lockstep."""
    step = min(cap, base * float(2 ** max(0, attempt)))
    return step * _rng.uniform(0.5, 1.0)


async def retry(
    step: Callable[[], Awaitable[T]],
    on_error: Callable[[Exception, int, float], None],
    *,
    base: float = 0.5,
    cap: float = 30.0,
) -> T:
    """``await step()`` until it returns; each failure is reported as ``on_error(exc, attempt,
    delay)`` and followed by a back-off sleep. Cancellation is not a failure: it propagates."""
    attempt = 0
    while True:
        try:
            return await step()
        except Exception as exc:
            attempt += 1
            delay = backoff_delay(attempt, base=base, cap=cap)
            on_error(exc, attempt, delay)
            await asyncio.sleep(delay)


class GaveUp(Exception):
    """``retry_blocking`` stopped: ``last`` is the final error, ``attempts`` how many were made."""

    def __init__(self, last: Exception, attempts: int) -> None:
        super().__init__(str(last) or type(last).__name__)
        self.last = last
        self.attempts = attempts


def retry_blocking(
    step: Callable[[], T],
    *,
    attempts: int,
    transient: Callable[[Exception], bool] = lambda exc: True,
    on_error: Callable[[Exception, int, float], None] | None = None,
    base: float = 0.2,
    cap: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``step()`` until it returns, for threads: ``retry`` with a bound. An error ``transient``
    refuses, or the ``attempts``-th, raises ``GaveUp``; each other one is reported as
    ``on_error(exc, attempt, delay)`` and followed by a back-off sleep."""
    attempt = 0
    while True:
        try:
            return step()
        except Exception as exc:
            attempt += 1
            if attempt >= attempts or not transient(exc):
                raise GaveUp(exc, attempt) from exc
            delay = backoff_delay(attempt, base=base, cap=cap)
            if on_error is not None:
                on_error(exc, attempt, delay)
            sleep(delay)
