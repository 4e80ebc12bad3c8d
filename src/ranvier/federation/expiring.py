"""A bounded cache of answers that each expire after a lifetime of their own (well-known
documents, SRV records, other servers' space hierarchies)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """Answers kept until their expiry, at most `size` of them (the one stored longest ago
    goes first)."""

    def __init__(self, size: int, clock: Callable[[], float]) -> None:
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K) -> tuple[V] | None:
        """(the answer,) while it is fresh, else None (an answer may itself be None)."""
        entry = self._entries.get(key)
        if entry is None or entry[1] <= self._clock():
            return None
        return (entry[0],)

    def put(self, key: K, value: V, lifetime_s: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (value, self._clock() + lifetime_s)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
