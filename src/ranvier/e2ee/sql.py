"""Helpers for the batched statements of the e2ee stores: long lists go in chunks."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

#: Values per `IN (...)` list: well below every engine's limit on parameters.
CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def placeholders(count: int, width: int = 1) -> str:
    """`?, ?, ...` for `count` values, or `(?, ?), (?, ?), ...` for rows of `width`."""
    one = "(" + ", ".join("?" * width) + ")" if width > 1 else "?"
    return ", ".join([one] * count)
