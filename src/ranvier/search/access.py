"""Which indexed events a searcher may find, as SQL: the rules of `rooms/visibility.py`
for the indexed types (never membership or history-visibility events), per room and
stream position, evaluated by the database for every match so that a page is exactly the
next `limit` readable results.

Each indexed row carries the history visibility recorded when its event was stored, as
one bit. From the searcher's membership history in a room follow the stretches of stream
positions between their membership changes, and for each the bits readable there:
world-readable always; everything while joined; `shared` up to their last join (and
while joined); `invited` while invited. The database finds the row's room among the
searcher's rooms by a binary search written as nested CASEs (a few comparisons per row,
not one per room) and tests the row's bit against the stretch its position falls in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.rooms.visibility import MembershipHistory

WORLD_READABLE, SHARED, INVITED, MEMBERS_ONLY = 1, 2, 4, 8
EVERY_BIT = WORLD_READABLE | SHARED | INVITED | MEMBERS_ONLY
_BITS = {"world_readable": WORLD_READABLE, "shared": SHARED, "invited": INVITED}


def visibility_bit(history_visibility: str) -> int:
    """The bit of a recorded history visibility; `joined` and unknown values are readable
    only by members, as `rooms/visibility.py` has it."""
    return _BITS.get(history_visibility, MEMBERS_ONLY)


@dataclass(frozen=True)
class RoomAccess:
    """The visibility bits a searcher may read in one room, by stream position: `masks[i]`
    applies below `bounds[i]`, and `masks[-1]` from the last bound on."""

    room_id: str
    bounds: tuple[int, ...]
    masks: tuple[int, ...]


def room_access(room_id: str, history: MembershipHistory) -> RoomAccess:
    """What a user with this membership history (ascending) may read of the room."""
    last_join = max((stream for stream, membership in history if membership == "join"), default=None)
    bounds: list[int] = []
    masks = [WORLD_READABLE | (SHARED if last_join is not None else 0)]
    for stream, membership in history:
        mask = WORLD_READABLE
        if membership == "join":
            mask = EVERY_BIT
        elif membership == "invite":
            mask |= INVITED
        if last_join is not None and stream < last_join:
            mask |= SHARED
        if mask != masks[-1]:
            bounds.append(stream)
            masks.append(mask)
    return RoomAccess(room_id, tuple(bounds), tuple(masks))


def access_sql(rooms: list[RoomAccess], *, byte_order: str = "") -> tuple[str, list[Any]]:
    """An SQL condition true for the rows of `s` (columns room_id, stream_ordering,
    visibility) the searcher may read, and its parameters (the room IDs; the positions and
    masks are integers of ours, written inline). `byte_order` is what makes the engine
    compare text by code point, as Python sorts it (PostgreSQL compares by the database's
    collation unless told `COLLATE "C"`)."""
    if not rooms:
        return "1 = 0", []
    params: list[Any] = []

    def masks_of(room: RoomAccess) -> str:
        if not room.bounds:
            return str(room.masks[0])
        steps = " ".join(f"WHEN s.stream_ordering < {int(bound)} THEN {int(mask)}"
                         for bound, mask in zip(room.bounds, room.masks))
        return f"CASE {steps} ELSE {int(room.masks[-1])} END"

    def search(sorted_rooms: list[RoomAccess]) -> str:
        if len(sorted_rooms) == 1:
            params.append(sorted_rooms[0].room_id)
            return f"CASE WHEN s.room_id = ? THEN {masks_of(sorted_rooms[0])} ELSE 0 END"
        middle = len(sorted_rooms) // 2
        params.append(sorted_rooms[middle].room_id)
        below = search(sorted_rooms[:middle])
        from_middle = search(sorted_rooms[middle:])
        return f"CASE WHEN s.room_id < ?{byte_order} THEN {below} ELSE {from_middle} END"

    # Parameters are collected in the order their `?` appear in the text.
    tree = search(sorted(rooms, key=lambda room: room.room_id))
    return f"(s.visibility & ({tree})) <> 0", params
