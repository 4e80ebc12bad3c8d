"""Pagination tokens of a room's timeline: `t<depth>_<stream>`.

A token is the boundary just before the event with that (depth, stream) key: events with
a smaller key are before it, the event itself and larger keys after it. Paging either way
from the same token therefore neither repeats nor skips an event.
"""

from __future__ import annotations

import re

from ranvier.errors import MatrixError

RoomPosition = tuple[int, int]

#: Backfilled events sit at negative stream positions, before everything /sync reports.
_ROOM_TOKEN = re.compile(r"t(-?[0-9]{1,19})_(-?[0-9]{1,19})")


def room_token(position: RoomPosition) -> str:
    return f"t{position[0]}_{position[1]}"


def parse_room_token(token: str) -> RoomPosition:
    match = _ROOM_TOKEN.fullmatch(token) if token.isascii() else None
    if match:
        return int(match.group(1)), int(match.group(2))
    raise MatrixError("M_INVALID_PARAM", "Invalid pagination token")


def position_after(position: RoomPosition) -> RoomPosition:
    """The boundary just after the event at `position`."""
    return position[0], position[1] + 1
