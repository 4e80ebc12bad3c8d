"""Wakes long-polling readers the moment something they care about commits.

Readers wait on keys (`room:<id>`, `user:<id>`); writers notify keys after their
transaction commits. Nothing polls a clock.
"""

from __future__ import annotations

import asyncio
from typing import Iterable


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future]] = {}

    def notify(self, keys: Iterable[str]) -> None:
        for key in keys:
            for future in self._waiters.pop(key, ()):
                if not future.done():
                    future.set_result(key)

    async def wait(self, keys: Iterable[str], timeout: float) -> bool:
        """Wait until one of `keys` is notified or `timeout` seconds pass; True if woken."""
        keys = list(keys)
        future = asyncio.get_running_loop().create_future()
        for key in keys:
            self._waiters.setdefault(key, set()).add(future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(future)
                    if not waiters:
                        del self._waiters[key]
