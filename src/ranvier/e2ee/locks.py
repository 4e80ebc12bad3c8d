"""One asyncio lock per key (a user), for read-check-write sequences of one process."""

from __future__ import annotations

import asyncio
import weakref


class KeyedLocks:
    """`locks(key)` is the key's lock; it lives as long as someone holds or awaits it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock
