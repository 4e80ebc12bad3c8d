"""Pagination tokens of a room's timeline: `t<depth>_<stream>`.

A token is the boundary just before the event with that (depth, stream) key: events with
a smaller key are before it, the event itself and larger keys after it. Paging either way
from the same token therefore neither repeats nor skips an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from ranvier.errors import MatrixError

RoomPosition = tuple[int, int]


def room_token(position: RoomPosition) -> str:
    return f"t{position[0]}_{position[1]}"


def parse_room_token(token: str) -> RoomPosition:
    if token.startswith("t"):
        depth, sep, stream = token[1:].partition("_")
        if sep and token.isascii() and depth.lstrip("-").isdigit() and stream.lstrip("-").isdigit():
            return int(depth), int(stream)
    raise MatrixError("M_INVALID_PARAM", "Invalid pagination token")


def position_after(position: RoomPosition) -> RoomPosition:
    """The boundary just after the event at `position`."""
    return position[0], position[1] + 1


STREAMS = ("events", "account_data", "receipts", "typing", "presence", "to_device", "device_lists")


@dataclass(frozen=True)
class SyncToken:
    """The position of every stream /sync reports; serialised as `s<p1>_<p2>_...`."""

    events: int = 0
    account_data: int = 0
    receipts: int = 0
    typing: int = 0
    presence: int = 0
    to_device: int = 0
    device_lists: int = 0

    def encode(self) -> str:
        return "s" + "_".join(str(getattr(self, name)) for name in STREAMS)

    @classmethod
    def parse(cls, token: str) -> "SyncToken":
        parts = token[1:].split("_") if token.startswith("s") else []
        if not parts or len(parts) > len(STREAMS) or not token.isascii() or not all(p.isdigit() for p in parts):
            raise MatrixError("M_INVALID_PARAM", "Invalid sync token")
        return cls(**{name: int(value) for name, value in zip(STREAMS, parts)})


def encode_pos(events: int, seq: int, nonce: str) -> str:
    """A sliding sync `pos`: `<events position>_<sequence>_<connection nonce>`. The events
    position lets /messages and /relations take a `pos` as they take a /sync `next_batch`."""
    return f"{events}_{seq}_{nonce}"


def parse_pos(pos: str) -> tuple[int, int, str] | None:
    """(events position, sequence, nonce) of a sliding sync `pos`, or None."""
    parts = pos.split("_")
    if len(parts) != 3 or not pos.isascii() or not parts[0].isdigit() or not parts[1].isdigit() \
            or not parts[2].isalnum():
        return None
    return int(parts[0]), int(parts[1]), parts[2]


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
