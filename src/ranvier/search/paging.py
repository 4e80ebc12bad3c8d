"""The `next_batch` token of a search: where the next page starts.

It holds the order, the stream position the first page was taken at (later events are
left out, so a page never shows what the previous one would have), the (rank, stream)
of the last result given, the count found by the first page, and the scope of a group's
token (`room_id` or `sender` and its value). A result's rank depends only on it and the
query, so continuing strictly after the last one neither repeats nor skips.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import orjson

from ranvier.errors import MatrixError

GROUP_KEYS = ("room_id", "sender")


@dataclass(frozen=True)
class Batch:
    order: str
    upto: int
    after: tuple[float, int]
    count: int | None
    #: (group key, value) pairs the search is narrowed to, from a group's token.
    scope: tuple[tuple[str, str], ...] = ()

    def encode(self) -> str:
        data = [self.order, self.upto, self.after[0], self.after[1], self.count, [list(pair) for pair in self.scope]]
        return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> "Batch":
        try:
            data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            order, upto, score, stream, count, scope = data
            pairs = tuple((key, value) for key, value in scope)
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise MatrixError("M_INVALID_PARAM", "Invalid next_batch token") from None
        valid = (
            isinstance(order, str) and _is_int(upto) and _is_int(stream)
            and isinstance(score, (int, float)) and not isinstance(score, bool)
            and (count is None or _is_int(count))
            and all(key in GROUP_KEYS and isinstance(value, str) for key, value in pairs)
        )
        if not valid:
            raise MatrixError("M_INVALID_PARAM", "Invalid next_batch token")
        return cls(order, upto, (float(score), stream), count, pairs)


def _is_int(value: object) -> bool:
    """A stream position or count: an integer the databases can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
