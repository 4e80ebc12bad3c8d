"""The token bucket: a burst, then refills at the configured rate."""

from __future__ import annotations

import pytest

from ranvier.errors import MatrixError
from ranvier.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_limit_then_refill():
    clock = FakeClock()
    limiter = RateLimiter(per_second=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("k")
    with pytest.raises(MatrixError) as raised:
        limiter.check("k")
    assert raised.value.errcode == "M_LIMIT_EXCEEDED" and raised.value.status == 429
    assert raised.value.extra["retry_after_ms"] == 500
    clock.now += 0.5
    limiter.check("k")
    with pytest.raises(MatrixError):
        limiter.check("k")


def test_keys_are_independent_and_record_does_not_raise():
    clock = FakeClock()
    limiter = RateLimiter(per_second=1.0, burst=2, clock=clock)
    limiter.record("a")
    limiter.record("a")
    assert not limiter.would_allow("a")
    limiter.record("a")  # counting past the limit does not raise
    assert limiter.would_allow("b")
    clock.now += 1.0
    assert limiter.would_allow("a")


def test_bucket_never_exceeds_burst():
    clock = FakeClock()
    limiter = RateLimiter(per_second=100.0, burst=2, clock=clock)
    clock.now += 3600
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(MatrixError):
        limiter.check("k")
