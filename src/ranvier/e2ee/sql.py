"""Helpers for the batched statements of the e2ee stores: long lists go in chunks."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from ranvier.storage.engine import Database

#: Values per `IN (...)` list: well below every engine's limit on parameters.
CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def placeholders(count: int, width: int = 1) -> str:
    """`?, ?, ...` for `count` values, or `(?, ?), (?, ?), ...` for rows of `width`."""
    one = "(" + ", ".join("?" * width) + ")" if width > 1 else "?"
    return ", ".join([one] * count)


def any_of(db: Database, values: Sequence[str]) -> tuple[str, Any]:
    """`(condition, parameter)` that tests a column against any number of strings with one
    parameter: `= ANY(array)` on PostgreSQL, a JSON array read by `json_each` on SQLite.

    The statement's text is then the same for every count. Each connection caches each
    text it prepared, and an `IN` list of 500 placeholders is 113 KiB of SQLite's memory,
    once per reader: a key query for a thousand users left 1.8 MiB of such statements."""
    if db.dialect == "postgresql":
        return "= ANY(?::text[])", list(values)
    return "IN (SELECT value FROM json_each(?))", json.dumps(list(values))
