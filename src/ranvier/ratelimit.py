"""Token-bucket rate limiting, keyed by action and by who is acting.

Kept in memory: limits protect this process; several processes each apply their own.
A server admin can override the limits of one user (`overrides`, shared by the limiters
of user actions and kept by `users.moderation`).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Callable

from ranvier.errors import MatrixError
from ranvier.metrics import RATE_LIMITED

_MAX_KEYS = 100_000


class RateLimiter:
    """Allows `burst` actions at once, refilled at `per_second`; a key found in
    `overrides` gets its own (per_second, burst) instead, and per_second 0 means no limit."""

    def __init__(self, per_second: float, burst: int, clock=time.monotonic, *, name: str = "",
                 overrides: dict[str, tuple[float, int]] | None = None,
                 unlimited: Callable[[str], bool] | None = None) -> None:
        self.per_second = per_second
        self.burst = burst
        self.overrides = overrides if overrides is not None else {}
        #: Keys never limited (the users of an application service that is not rate limited).
        self.unlimited = unlimited
        self._clock = clock
        self._refused = RATE_LIMITED.labels(name or "unnamed")
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _limits(self, key: str) -> tuple[float, int]:
        if self.unlimited is not None and self.unlimited(key):
            return 0.0, 0
        return self.overrides.get(key, (self.per_second, self.burst))

    def _level(self, key: str, now: float, per_second: float, burst: int) -> float:
        tokens, stamp = self._buckets.get(key, (float(burst), now))
        return min(float(burst), tokens + (now - stamp) * per_second)

    def check(self, key: str, cost: float = 1.0) -> None:
        """Take `cost` from the bucket of `key`, or raise 429 M_LIMIT_EXCEEDED."""
        per_second, burst = self._limits(key)
        if per_second <= 0:
            return
        now = self._clock()
        tokens = self._level(key, now, per_second, burst)
        if tokens < cost:
            self._refused.inc()
            wait_ms = math.ceil((cost - tokens) / per_second * 1000)
            raise MatrixError("M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=wait_ms)
        self._store(key, tokens - cost, now)

    def would_allow(self, key: str) -> bool:
        per_second, burst = self._limits(key)
        return per_second <= 0 or self._level(key, self._clock(), per_second, burst) >= 1.0

    def record(self, key: str) -> None:
        """Count an action that already happened (e.g. a failed login) without refusing it."""
        per_second, burst = self._limits(key)
        now = self._clock()
        self._store(key, max(0.0, self._level(key, now, per_second, burst) - 1.0), now)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > _MAX_KEYS:
            self._buckets.popitem(last=False)
