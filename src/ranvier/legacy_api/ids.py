"""The draft's identifiers and today's (docs/legacy-api.md, "Identifiers").

Users: the draft writes `bob@sy.org` where today writes `@bob:sy.org`; each is the other
rearranged (a domain has no `@`, a localpart no `:`). Both forms, and a bare localpart of
this server, are accepted wherever the draft takes a user ID.

Rooms: the draft's `room_beta@sy.org` is the room with the alias `#room_beta:sy.org`. A
room is shown under its canonical alias when that alias is on this server, and under its
room ID otherwise; both forms (and `#alias:domain`) are accepted as input.
"""

from __future__ import annotations

from typing import Iterable

from ranvier.errors import MatrixError
from ranvier.events.identifiers import (InvalidIdentifier, is_valid_room_alias, is_valid_room_id, parse_user_id,
                                        split_id)
from ranvier.rooms.service import RoomHead, RoomServer

CANONICAL_ALIAS = "m.room.canonical_alias"


def _bad(what: str, value: str) -> MatrixError:
    return MatrixError("M_BAD_JSON", f"{value!r} is not a valid {what}")


# -- users -------------------------------------------------------------------------------

def user_to_draft(user_id: str) -> str:
    """`@bob:sy.org` -> `bob@sy.org`."""
    if user_id.startswith("@") and ":" in user_id:
        localpart, _, domain = user_id[1:].partition(":")
        return f"{localpart}@{domain}"
    return user_id


def _todays_form(value: str, sigil: str, server_name: str) -> str:
    """`name@domain` (a bare `name`: of this server) as `<sigil>name:domain`; an ID already in
    today's form as it is."""
    if value.startswith(sigil) and ":" in value:
        return value
    if "@" in value:
        localpart, _, domain = value.rpartition("@")
        return f"{sigil}{localpart}:{domain}"
    return f"{sigil}{value}:{server_name}"


def user_from_draft(value: object, server_name: str) -> str:
    """A user ID in either form, or a bare localpart of this server, as today's user ID."""
    if not isinstance(value, str) or not value:
        raise MatrixError("M_BAD_JSON", "A user ID must be a non-empty string")
    user_id = _todays_form(value, "@", server_name)
    try:
        localpart, _ = parse_user_id(user_id)
    except InvalidIdentifier:
        raise _bad("user ID", value) from None
    if not localpart:
        raise _bad("user ID", value)
    return user_id


# -- rooms -------------------------------------------------------------------------------

def alias_from_draft(value: str, server_name: str) -> str:
    """`room_beta@sy.org` (or `#room_beta:sy.org`, or a bare `room_beta`) -> `#room_beta:sy.org`."""
    alias = _todays_form(value, "#", server_name)
    try:
        localpart, _ = split_id(alias, "#")
    except InvalidIdentifier:
        raise _bad("room ID", value) from None
    if not localpart or not is_valid_room_alias(alias) or any(c.isspace() or c in "@#" for c in localpart):
        raise _bad("room ID", value)
    return alias


def new_room_alias(value: str, server_name: str) -> str:
    """The alias of a room a draft client creates under a chosen ID: on this server only."""
    if value.startswith("!"):
        raise MatrixError("M_BAD_JSON", "Room IDs starting with ! are allocated by the server: "
                                        "choose a name such as room_beta@" + server_name + ", or POST /rooms")
    alias = alias_from_draft(value, server_name)
    if split_id(alias, "#")[1] != server_name:
        raise MatrixError("M_BAD_JSON", f"Rooms made here must be named on this server: name@{server_name}")
    return alias


async def resolve_room(rooms: RoomServer, value: str) -> str:
    """Today's room ID of a room named in either form; M_NOT_FOUND if there is no such room."""
    if value.startswith("!"):
        if not is_valid_room_id(value):
            raise _bad("room ID", value)
        room_id = value if await rooms.room_exists(value) else None
    else:
        room_id = await rooms.store.room_of_alias(alias_from_draft(value, rooms.server_name))
    if room_id is None:
        raise MatrixError("M_NOT_FOUND", f"No room {value}")
    return room_id


def room_to_draft(head: RoomHead, server_name: str) -> str:
    """The draft's name of a room: its canonical alias on this server as `name@server`, else its room ID."""
    event = head.state.get((CANONICAL_ALIAS, ""))
    alias = event.content.get("alias") if event is not None else None
    if isinstance(alias, str) and is_valid_room_alias(alias):
        localpart, domain = split_id(alias, "#")
        if domain == server_name and localpart:
            return f"{localpart}@{domain}"
    return head.room_id


async def rooms_to_draft(rooms: RoomServer, room_ids: Iterable[str]) -> dict[str, str]:
    """room_id -> the draft's name, from the rooms' heads (kept in memory)."""
    return {room_id: room_to_draft(await rooms.head(room_id), rooms.server_name) for room_id in set(room_ids)}
