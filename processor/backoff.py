"""Capped exponential back-off with jitter, shared by every retry loop."""

from __future__ import annotations

import random

_rng = random.SystemRandom()


def backoff_delay(attempt: int, *, base: float = 0.2, cap: float = 30.0) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): ``base·2^attempt``, capped, with
    "equal jitter" (50-100 % of the step) so many retriers do not retry in lockstep."""
    step = min(cap, base * float(2 ** max(0, attempt)))
    return step * _rng.uniform(0.5, 1.0)
