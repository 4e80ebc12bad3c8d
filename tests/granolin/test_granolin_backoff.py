"""The sync loop's backoff policy, as a pure function."""

from __future__ import annotations

import pytest

from granolin import Backoff


def test_grows_exponentially_within_jitter_bounds() -> None:
    policy = Backoff(base=1.0, cap=60.0)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (7, 60.0), (50, 60.0), (10_000, 60.0)]:
        assert policy.delay(failures, rand=lambda: 0.0) == pytest.approx(ceiling / 2)
        assert policy.delay(failures, rand=lambda: 1.0) == pytest.approx(ceiling)


def test_jitter_spreads_retries() -> None:
    policy = Backoff(base=1.0, cap=60.0)
    delays = {round(policy.delay(5), 6) for _ in range(50)}
    assert len(delays) > 40
    assert all(8.0 <= delay <= 16.0 for delay in delays)


def test_no_failure_no_wait() -> None:
    assert Backoff().delay(0) == 0.0
