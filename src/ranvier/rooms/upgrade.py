"""Room upgrades (spec: client-server API, "Room Upgrades", server behaviour).

`upgrade_room` replaces a room by a new one of another version, using only the room
server's public methods: the new room is made by `create_room` (its create event names
the predecessor, its initial state is the old room's transferable state), then the old
room gets its tombstone, its local aliases and directory entry move to the new room,
and the old room's power levels are raised so ordinary users can no longer talk there.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from ranvier.errors import MatrixError
from ranvier.events import auth as auth_rules
from ranvier.events.identifiers import InvalidIdentifier, parse_user_id
from ranvier.events.model import CREATE, MEMBER, POWER_LEVELS
from ranvier.events.room_versions import ROOM_VERSIONS, RoomVersion
from ranvier.rooms.service import BAN, JOIN, RoomHead, RoomServer, default_power_levels

log = logging.getLogger(__name__)

TOMBSTONE = "m.room.tombstone"
CANONICAL_ALIAS = "m.room.canonical_alias"
SPACE_CHILD = "m.space.child"
TOMBSTONE_BODY = "This room has been replaced"

#: State copied to the new room, in this order (the spec's recommended list); the power
#: levels are sent last, bans and a space's children are copied too.
TRANSFERRED_STATE = (
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.encryption",
    "m.room.server_acl",
)
_LEVEL_NAMES = tuple(auth_rules.POWER_LEVEL_DEFAULTS)

_locks: dict[str, asyncio.Lock] = {}


def _lock(room_id: str) -> asyncio.Lock:
    lock = _locks.get(room_id)
    if lock is None:
        lock = _locks[room_id] = asyncio.Lock()
    return lock


def _normalised_levels(content: dict[str, Any], old: RoomVersion) -> dict[str, Any]:
    """The power levels content with every level as a JSON integer (older versions allow
    strings), entries that are not levels dropped, other keys kept as they are."""
    result: dict[str, Any] = {}
    for key, value in content.items():
        if key in _LEVEL_NAMES:
            level = auth_rules.parse_power_level(value, old)
            if level is not None:
                result[key] = level
        elif key in ("events", "notifications", "users"):
            if isinstance(value, dict):
                levels = {k: auth_rules.parse_power_level(v, old) for k, v in value.items()}
                result[key] = {k: v for k, v in levels.items() if v is not None}
        else:
            result[key] = value
    return result


def _highest_level(content: dict[str, Any]) -> int:
    levels = [value for key, value in content.items() if key in _LEVEL_NAMES and type(value) is int]
    for field in ("events", "notifications", "users"):
        mapping = content.get(field)
        if isinstance(mapping, dict):
            levels += [value for value in mapping.values() if type(value) is int]
    return max(levels, default=0)


def _new_power_levels(head: RoomHead, upgrader: str, version: RoomVersion,
                      creators: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(levels to create the new room with, levels it should end with).

    The new room is created with the upgrader raised to the highest level in use, so it
    can send every copied state event; the copied levels are then sent last. From v12 the
    new room's creators have infinite power and may not be listed in `users`.
    """
    old_event = head.state.get((POWER_LEVELS, ""))
    final = _normalised_levels(old_event.content, head.version) if old_event is not None else \
        default_power_levels(upgrader, version, "private_chat")
    users = dict(final.get("users") or {})
    if head.version.privileged_creators and not version.privileged_creators:
        # The old room's creators had infinite power: give them the top level instead.
        create = head.state.get((CREATE, ""))
        top = max(100, _highest_level(final))
        for creator in auth_rules.room_creators(create) if create is not None else ():
            users[creator] = top
    if version.privileged_creators:
        for creator in creators:
            users.pop(creator, None)
    final["users"] = users
    initial = {**default_power_levels(upgrader, version, "private_chat"), **final}
    if not version.privileged_creators:
        initial["users"] = {**users, upgrader: max(_highest_level(initial), 100)}
    return initial, final


async def upgrade_room(rooms: RoomServer, user_id: str, room_id: str, new_version: str, *,
                       additional_creators: list[str] | None = None) -> str:
    """Upgrade `room_id` to `new_version` on behalf of `user_id`; returns the new room's ID."""
    version = ROOM_VERSIONS.get(new_version)
    if version is None:
        raise MatrixError("M_UNSUPPORTED_ROOM_VERSION", f"Room version {new_version!r} is not supported")
    extra_creators: list[str] = []
    if version.privileged_creators:
        for creator in additional_creators or []:
            try:
                parse_user_id(creator)
            except (InvalidIdentifier, TypeError):
                raise MatrixError("M_INVALID_PARAM", f"additional_creators must hold user IDs, not {creator!r}") from None
            if creator != user_id and creator not in extra_creators:
                extra_creators.append(creator)
    async with _lock(room_id):
        head = await rooms.head(room_id)
        if auth_rules.membership_of(head.state, user_id) != JOIN:
            raise MatrixError("M_FORBIDDEN", "You are not in this room")
        needed = auth_rules.required_power_level(head.state, TOMBSTONE, True)
        if auth_rules.get_power_level(head.state, user_id) < needed:
            raise MatrixError("M_FORBIDDEN", "You do not have the power to upgrade this room")

        new_room_id = await _create_replacement(rooms, head, user_id, version, extra_creators)
        await rooms.send_event(user_id, None, room_id, TOMBSTONE,
                               {"body": TOMBSTONE_BODY, "replacement_room": new_room_id}, state_key="")
        await _move_aliases(rooms, head, user_id, new_room_id)
        await _restrict_old_room(rooms, room_id, user_id)
        row = await rooms.store.get_room(room_id)
        if row is not None and row.is_public:
            await rooms.store.set_public(room_id, False)
        return new_room_id


async def _create_replacement(rooms: RoomServer, head: RoomHead, user_id: str, version: RoomVersion,
                              extra_creators: list[str]) -> str:
    old_create = head.state.get((CREATE, ""))
    creation_content: dict[str, Any] = {"predecessor": {"room_id": head.room_id, "event_id": head.latest_event_id}}
    room_type = old_create.content.get("type") if old_create is not None else None
    if isinstance(room_type, str):
        creation_content["type"] = room_type
    if extra_creators:
        creation_content["additional_creators"] = extra_creators
    creators = {user_id, *extra_creators}
    initial_levels, final_levels = _new_power_levels(head, user_id, version, creators)
    users = initial_levels.get("users", {})
    upgrader_level = math.inf if version.privileged_creators else users.get(user_id, 0)

    def banned_level(target: str) -> int:  # a ban needs the target below the upgrader
        return users.get(target, initial_levels.get("users_default", 0))

    initial_state: list[tuple[str, str, dict[str, Any]]] = []
    for event_type in TRANSFERRED_STATE:
        event = head.state.get((event_type, ""))
        if event is not None:
            initial_state.append((event_type, "", dict(event.content)))
        elif event_type == "m.room.join_rules":
            initial_state.append((event_type, "", {"join_rule": "invite"}))
        elif event_type == "m.room.history_visibility":
            initial_state.append((event_type, "", {"history_visibility": "shared"}))
    is_space = isinstance(room_type, str) and room_type == "m.space"
    for (event_type, state_key), event in sorted(head.state.items(), key=lambda item: item[0]):
        if is_space and event_type == SPACE_CHILD and event.content.get("via"):
            initial_state.append((event_type, state_key, dict(event.content)))
        elif (event_type == MEMBER and event.membership == BAN and state_key not in creators
              and banned_level(state_key) < upgrader_level):
            content: dict[str, Any] = {"membership": BAN}
            reason = event.content.get("reason")
            if isinstance(reason, str):
                content["reason"] = reason
            initial_state.append((MEMBER, state_key, content))
    if final_levels != initial_levels:
        initial_state.append((POWER_LEVELS, "", final_levels))

    row = await rooms.store.get_room(head.room_id)
    return await rooms.create_room(
        user_id,
        room_version=version.identifier,
        preset="public_chat",  # adds nothing: join rules and history visibility are explicit above
        is_public=row.is_public if row is not None else False,
        alias=None,
        name=None,
        topic=None,
        invite=[],
        is_direct=False,
        initial_state=initial_state,
        power_level_content_override=initial_levels,
        creation_content=creation_content,
    )


async def _move_aliases(rooms: RoomServer, head: RoomHead, user_id: str, new_room_id: str) -> None:
    """The old room's local aliases now lead to the new room, and so does its canonical alias."""
    await rooms.store.move_aliases(head.room_id, new_room_id)
    canonical = head.state.get((CANONICAL_ALIAS, ""))
    if canonical is None or not canonical.content:
        return
    for room_id, content in ((head.room_id, {}), (new_room_id, dict(canonical.content))):
        try:
            await rooms.send_event(user_id, None, room_id, CANONICAL_ALIAS, content, state_key="")
        except MatrixError as exc:  # the alias mapping has moved all the same
            log.warning("upgrade of %s: could not update the canonical alias of %s: %s %s", head.room_id, room_id,
                        exc.errcode, exc.message)


async def _restrict_old_room(rooms: RoomServer, room_id: str, user_id: str) -> None:
    """Raise events_default and invite to max(50, users_default + 1) in the old room."""
    head = await rooms.head(room_id)
    event = head.state.get((POWER_LEVELS, ""))
    if event is None:  # a new levels event would take the creator's implicit 100 away
        return
    content = _normalised_levels(event.content, head.version)
    restricted = max(50, auth_rules.power_level_setting(head.state, "users_default") + 1)
    changed = dict(content)
    for name in ("events_default", "invite"):
        if auth_rules.power_level_setting(head.state, name) < restricted:
            changed[name] = restricted
    if changed == content:
        return
    try:
        await rooms.send_event(user_id, None, room_id, POWER_LEVELS, changed, state_key="")
    except MatrixError as exc:  # the tombstone is in place; restricting the room is a courtesy
        log.warning("upgrade of %s: could not raise its power levels to restrict it: %s %s", room_id, exc.errcode,
                    exc.message)
