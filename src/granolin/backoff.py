"""How long the sync loop waits after a failure.

A pure function so the policy can be tested without a clock: the delay grows
exponentially with the number of consecutive failures, is capped, and is
jittered so that many bots failing together do not retry in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": half fixed, half random."""

    base: float = 1.0
    """Seconds to wait after the first failure (before jitter)."""
    cap: float = 60.0
    """No wait is longer than this."""

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after ``failures`` consecutive failures (``failures >= 1``).

        The result lies in ``[ceiling / 2, ceiling]`` where ``ceiling`` is
        ``min(cap, base * 2 ** (failures - 1))``.
        """
        if failures < 1:
            return 0.0
        ceiling = min(self.cap, self.base * 2.0 ** min(failures - 1, 64))
        return ceiling / 2 + ceiling / 2 * rand()
