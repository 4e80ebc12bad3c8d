"""Stream positions: one increasing number per stream, handed out before a write commits.

Writes to different rooms commit concurrently and so may finish out of order; readers
must only look up to the highest position below which every write has committed, or
they would skip an event that commits a moment later.
"""

from __future__ import annotations


class StreamPositions:
    def __init__(self, last_persisted: int) -> None:
        self._next = last_persisted + 1
        self._current = last_persisted
        self._in_flight: set[int] = set()

    def allocate(self) -> int:
        position = self._next
        self._next += 1
        self._in_flight.add(position)
        return position

    def finish(self, position: int) -> bool:
        """Mark a position committed (or abandoned); True if `current` moved forward."""
        self._in_flight.discard(position)
        before = self._current
        self._current = min(self._in_flight) - 1 if self._in_flight else self._next - 1
        return self._current != before

    @property
    def current(self) -> int:
        """Every position up to this one is committed (or abandoned)."""
        return self._current
