"""Room administration for server admins: the room list with its summary fields, blocking,
deleting a room (its local members leave, its aliases and directory entry go, its rows are
purged) and purging a room's history before a point.

Purging reaches other services' rows of the room through `PurgeHook`s handed over by the
server (push counts, threads, receipts, room account data, the directory), all deleted in
the same transaction as the room server's rows, with the room locked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Protocol

from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of
from ranvier.rooms.admin_store import RoomAdminStore
from ranvier.rooms.service import HELD_MEMBERSHIPS, JOIN, LEAVE, RoomServer
from ranvier.storage.engine import Transaction

log = logging.getLogger(__name__)

#: Sort keys of the room list (Synapse's `order_by`).
ROOM_ORDER = ("name", "canonical_alias", "joined_members", "joined_local_members", "version", "creator",
              "encryption", "federatable", "public", "join_rules", "guest_access", "history_visibility",
              "state_events")
#: Keys sorted biggest first when the direction is forwards (as Synapse does).
_BIGGEST_FIRST = {"joined_members", "joined_local_members", "state_events"}


class PurgeHook(Protocol):
    """Another service's rows of a room, deleted in the purge's transaction."""

    def purge_room(self, txn: Transaction, room_id: str) -> Awaitable[None]: ...


class EventPurgeHook(Protocol):
    """Another service's rows of single events, deleted when a history purge removes them."""

    def purge_events(self, txn: Transaction, room_id: str, event_ids: list[str]) -> Awaitable[None]: ...


@dataclass
class RoomListing:
    rooms: list[dict[str, Any]]
    total: int


def _text(state: dict[str, dict[str, Any]], event_type: str, key: str) -> str | None:
    value = state.get(event_type, {}).get(key)
    return value if isinstance(value, str) else None


def _sort_key(room: dict[str, Any], key: str) -> tuple:
    value = room.get(key)
    if isinstance(value, bool):
        value = int(value)
    return (value is None, value if value is not None else "")


class RoomAdmin:
    def __init__(self, rooms: RoomServer) -> None:
        self.rooms = rooms
        self.store = RoomAdminStore(rooms.store.db)
        self.purge_hooks: list[PurgeHook] = []
        self.event_purge_hooks: list[EventPurgeHook] = []

    async def start(self) -> None:
        self.rooms.blocked_rooms.update(await self.store.blocked_rooms())

    # -- reading -------------------------------------------------------------------------

    def _room_json(self, row: tuple[Any, ...], state: dict[str, dict[str, Any]]) -> dict[str, Any]:
        room_id, version, creator, is_public, joined, joined_local, state_events = row
        create = state.get("m.room.create", {})
        room_type = create.get("type")
        return {
            "room_id": room_id,
            "name": _text(state, "m.room.name", "name"),
            "canonical_alias": _text(state, "m.room.canonical_alias", "alias"),
            "joined_members": joined,
            "joined_local_members": joined_local,
            "version": version,
            "creator": creator,
            "encryption": _text(state, "m.room.encryption", "algorithm"),
            "federatable": create.get("m.federate", True) is not False,
            "public": bool(is_public),
            "join_rules": _text(state, "m.room.join_rules", "join_rule"),
            "guest_access": _text(state, "m.room.guest_access", "guest_access"),
            "history_visibility": _text(state, "m.room.history_visibility", "history_visibility"),
            "state_events": state_events,
            "room_type": room_type if isinstance(room_type, str) else None,
        }

    async def list_rooms(self, *, search_term: str | None, order_by: str, backwards: bool, start: int,
                         limit: int) -> RoomListing:
        """Rooms whose name, canonical alias or ID contains `search_term` (case-folded),
        sorted by `order_by` (ties by room ID); two queries whatever the room count."""
        rows = await self.store.rooms_with_counts(self.rooms.server_name)
        states = await self.store.summary_state(None)
        rooms = [self._room_json(row, states.get(row[0], {})) for row in rows]
        if search_term:
            term = search_term.casefold()
            rooms = [room for room in rooms if any(term in (room[key] or "").casefold()
                                                   for key in ("name", "canonical_alias", "room_id"))]
        rooms.sort(key=lambda room: room["room_id"])
        reverse = backwards != (order_by in _BIGGEST_FIRST)
        rooms.sort(key=lambda room: _sort_key(room, order_by), reverse=reverse)
        return RoomListing(rooms[start:start + limit], len(rooms))

    async def room_details(self, room_id: str) -> dict[str, Any]:
        """The list entry of one room, with its avatar, topic and joined local devices."""
        if not await self.rooms.room_exists(room_id):
            raise MatrixError("M_NOT_FOUND", "Room not found")
        head = await self.rooms.head(room_id)
        joined = list(head.joined)
        local = [user for user in joined if domain_of(user) == self.rooms.server_name]
        state_rows = (await self.store.summary_state([room_id])).get(room_id, {})
        row = await self.rooms.store.get_room(room_id)
        room = self._room_json((room_id, row.room_version, row.creator, row.is_public, len(joined), len(local),
                                len(head.state)), state_rows)
        room.update({
            "avatar": _text(state_rows, "m.room.avatar", "url"),
            "topic": _text(state_rows, "m.room.topic", "topic"),
            "joined_local_devices": await self.store.joined_local_devices(room_id, self.rooms.server_name),
            "forgotten": False,
        })
        return room

    # -- blocking ------------------------------------------------------------------------

    async def set_blocked(self, room_id: str, admin: str, blocked: bool) -> None:
        """Block (joins, invites and knocks refused from now on) or unblock; a room this
        server does not know yet can be blocked too."""
        await self.store.set_blocked(room_id, admin, blocked)
        if blocked:
            self.rooms.blocked_rooms.setdefault(room_id, admin)
        else:
            self.rooms.blocked_rooms.pop(room_id, None)

    # -- deleting ------------------------------------------------------------------------

    async def delete_room(self, room_id: str, admin: str, *, block: bool, purge: bool,
                          force_purge: bool) -> dict[str, Any]:
        """Make the room's local members leave (invites and knocks withdrawn), remove its
        local aliases and directory entry, optionally block it, and purge it unless
        `purge` is false. Refuses to purge while local users could not be removed, unless
        `force_purge`."""
        if block:
            await self.set_blocked(room_id, admin, True)
        if not await self.rooms.room_exists(room_id):
            if block:
                return {"kicked_users": [], "failed_to_kick_users": [], "local_aliases": [], "new_room_id": None}
            raise MatrixError("M_NOT_FOUND", "Room not found")
        kicked, failed = [], []
        members = await self.rooms.store.members(room_id)
        for user_id, membership, _ in members:
            if membership not in HELD_MEMBERSHIPS or domain_of(user_id) != self.rooms.server_name:
                continue
            try:
                await self.rooms.update_membership(user_id, room_id, user_id, LEAVE)
            except MatrixError as exc:
                log.warning("could not remove %s from %s: %s", user_id, room_id, exc.message)
                failed.append(user_id)
                continue
            if membership == JOIN:
                kicked.append(user_id)
        aliases = await self.rooms.store.aliases_of_room(room_id)
        for alias in aliases:
            await self.rooms.store.delete_alias(alias)
        await self.rooms.store.set_public(room_id, False)
        if purge:
            if failed and not force_purge:
                raise MatrixError("M_UNKNOWN", "Some local users could not be removed; use force_purge")
            await self.purge_room(room_id)
        return {"kicked_users": kicked, "failed_to_kick_users": failed, "local_aliases": aliases, "new_room_id": None}

    async def purge_room(self, room_id: str) -> None:
        """Delete every row of the room, the room server's and the hooks', in one transaction."""
        db = self.store.db

        async def delete_rows() -> None:
            async with db.transaction() as txn:
                for hook in self.purge_hooks:
                    await hook.purge_room(txn, room_id)
                await self.store.purge_room(txn, room_id)

        await self.rooms.remove_room(room_id, delete_rows)

    async def purge_history(self, room_id: str, *, before_stream: int, delete_local_events: bool) -> int:
        """Delete the room's events before `before_stream` (see
        `RoomAdminStore.purgeable_events` for what stays); returns how many."""
        head = await self.rooms.head(room_id)
        doomed = await self.store.purgeable_events(
            room_id, before_stream=before_stream, keep_event_ids=list(head.extremities),
            local_server=None if delete_local_events else self.rooms.server_name,
        )
        event_ids = [event_id for event_id, _ in doomed]
        if not event_ids:
            return 0
        db = self.store.db

        async def delete_rows() -> None:
            async with db.transaction() as txn:
                for hook in self.event_purge_hooks:
                    await hook.purge_events(txn, room_id, event_ids)
                await self.store.delete_events(txn, event_ids)

        await self.rooms.remove_events(room_id, event_ids, delete_rows)
        return len(event_ids)

    async def stream_of_event(self, room_id: str, event_id: str) -> int:
        row = (await self.rooms.store.get_event_rows([event_id])).get(event_id)
        if row is None or row.event.room_id != room_id:
            raise MatrixError("M_NOT_FOUND", "Event not found in this room")
        return row.stream_ordering

    async def stream_before_ts(self, room_id: str, ts: int) -> int:
        """The stream position of the room's first event at or after `ts` (everything
        before it is older than `ts`)."""
        found = await self.rooms.store.event_closest_to_ts(room_id, ts, forwards=True)
        if found is None:
            return self.rooms.positions.current + 1
        return await self.stream_of_event(room_id, found[0])
