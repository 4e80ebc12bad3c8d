"""The draft's pagination streaming API: `from`, `to` and `limit`, the magic tokens START
and END, exclusive tokens, and answers of the form {chunk, start, end}.

Each dataset has its own tokens (the event stream's positions, a room's timeline
positions, or the index of an item in a list); this module reads the request, decides the
direction, and pages plain lists by index, as the draft's public room list example draws.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from aiohttp import web

from ranvier.errors import MatrixError

START, END = "START", "END"
#: The most items one answer holds. The draft's default is no limit; a longer dataset is
#: answered in pages of this size, with the tokens to continue from.
MAX_PAGE = 1000
_INDEX = re.compile(r"[0-9]{1,9}")

T = TypeVar("T")


def bad_pagination(message: str) -> MatrixError:
    return MatrixError("M_BAD_PAGINATION", message)


@dataclass(frozen=True)
class PageRequest:
    """What a client asked for; tokens are START, END or one of the dataset's own."""

    from_token: str
    to_token: str
    limit: int

    def backwards(self, to_is_before_from: Callable[[], bool]) -> bool:
        """Towards START (newest first) or towards END; two concrete tokens compare by position."""
        if self.to_token == END:
            return False
        if self.to_token == START:
            return True
        if self.from_token in (START, END):
            return self.from_token == END
        return to_is_before_from()


def page_request(request: web.Request) -> PageRequest:
    """from (default START), to (default END) and limit (default: no limit, up to MAX_PAGE)."""
    for name in ("from", "to"):
        if name in request.query and not request.query[name]:
            raise bad_pagination(f"{name} must be START, END or a token from this server")
    raw_limit = request.query.get("limit")
    if raw_limit is None:
        limit = MAX_PAGE
    elif _INDEX.fullmatch(raw_limit):
        limit = min(int(raw_limit), MAX_PAGE)
    else:
        raise bad_pagination("limit must be a non-negative integer")
    return PageRequest(request.query.get("from", START), request.query.get("to", END), limit)


def query_flag(request: web.Request, name: str) -> bool:
    """A true|false parameter of a paginated request (absent is false)."""
    value = request.query.get(name, "false")
    if value not in ("true", "false"):
        raise bad_pagination(f"{name} must be true or false")
    return value == "true"


def query_milliseconds(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _INDEX.fullmatch(raw):
        raise bad_pagination(f"{name} must be a number of milliseconds")
    return min(int(raw), maximum)


def index_page(items: Sequence[T], request: PageRequest) -> tuple[list[T], dict[str, Any]]:
    """A page of a list whose tokens are item indexes ("0" is the first item), exclusive:
    from=9 starts after the tenth item. Returns the chunk and its start/end tokens (the
    indexes of its earliest and latest items), or no tokens when the chunk is the whole list."""
    count = len(items)

    def position(token: str) -> int:
        if token == START:
            return -1
        if token == END:
            return count
        if not _INDEX.fullmatch(token):
            raise bad_pagination(f"{token!r} is not a token of this list: START, END or an index")
        return int(token)

    low, high = position(request.from_token), position(request.to_token)
    if request.backwards(lambda: high < low):
        indexes = list(range(min(low, count) - 1, max(high, -1), -1))
    else:
        indexes = list(range(max(low, -1) + 1, min(high, count)))
    indexes = indexes[:request.limit]
    chunk = [items[index] for index in indexes]
    if len(chunk) == count:
        return chunk, {}
    if not indexes:
        return chunk, {"start": request.from_token, "end": request.from_token}
    return chunk, {"start": str(min(indexes)), "end": str(max(indexes))}
