"""Pagination tokens of a room's timeline: `t<depth>_<stream>`.

A token is the boundary just before the event with that (depth, stream) key: events with
a smaller key are before it, the event itself and larger keys after it. Paging either way
from the same token therefore neither repeats nor skips an event.
"""

from __future__ import annotations

import re
from typing import Awaitable, Callable

from ranvier.errors import MatrixError
from ranvier.notify.tokens import SyncToken, parse_pos

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


async def room_position(token: str,
                        last_event_position: Callable[[int], Awaitable[RoomPosition | None]]) -> RoomPosition:
    """Where a `from`/`to` of /messages or /relations stands in a room's (depth, stream)
    order: a room token (`t...`) is that position; a stream token (`s...`: /sync,
    /initialSync, /events) or a sliding sync `pos` stands just after the room's last event
    at or before its events position (`last_event_position` finds that event), so "before
    the token" means the same in both orders."""
    pos = parse_pos(token)
    if token.startswith("s"):
        try:
            stream = SyncToken.parse(token).events
        except MatrixError:
            raise MatrixError("M_INVALID_PARAM", "Invalid pagination token") from None
    elif pos is not None:
        stream = pos[0]
    else:
        return parse_room_token(token)
    last = await last_event_position(stream)
    return position_after(last) if last is not None else (0, 0)
