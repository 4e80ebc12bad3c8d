"""Token-bucket rate limiting, keyed by action and by who is acting.

Kept in memory: limits protect this process; several processes each apply their own.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from ranvier.errors import MatrixError

_MAX_KEYS = 100_000


class RateLimiter:
    """Allows `burst` actions at once, refilled at `per_second`."""

    def __init__(self, per_second: float, burst: int, clock=time.monotonic) -> None:
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, key: str, now: float) -> float:
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - stamp) * self.per_second)

    def check(self, key: str, cost: float = 1.0) -> None:
        """Take `cost` from the bucket of `key`, or raise 429 M_LIMIT_EXCEEDED."""
        now = self._clock()
        tokens = self._level(key, now)
        if tokens < cost:
            wait_ms = math.ceil((cost - tokens) / self.per_second * 1000)
            raise MatrixError("M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=wait_ms)
        self._store(key, tokens - cost, now)

    def would_allow(self, key: str) -> bool:
        return self._level(key, self._clock()) >= 1.0

    def record(self, key: str) -> None:
        """Count an action that already happened (e.g. a failed login) without refusing it."""
        now = self._clock()
        self._store(key, max(0.0, self._level(key, now) - 1.0), now)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > _MAX_KEYS:
            self._buckets.popitem(last=False)
