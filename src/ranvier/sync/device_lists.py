"""`device_lists` of /sync and GET /keys/changes: whose devices a client should look up again.

In a window (since, now] of the room and device-list streams:
- `changed`: the client's own user and every user sharing a joined room with it whose
  devices, device keys or cross-signing keys changed; and every user it started sharing a
  room with (a join of theirs in one of its rooms, or its join to a room of theirs);
- `left`: every user it stopped sharing a room with (a leave or ban, theirs or its own)
  who shares no room with it now.

Each is a few batched queries: the device-list stream against "who shares a room with
whom" (one self-join on `memberships`), the membership events of the client's rooms in
the window, and the shared-room test of the users they name. Rooms with no membership
event since the token are found in memory (this class is a persist hook of the room
server for that), so an ordinary message costs nothing here.
"""

from __future__ import annotations

from typing import Any

from ranvier.e2ee.keys import KeyService
from ranvier.events.model import MEMBER, Event
from ranvier.rooms.service import BAN, JOIN, LEAVE, RoomServer
from ranvier.rooms.store import PersistedEvent
from ranvier.rooms.sync_queries import SyncQueries
from ranvier.storage.engine import Transaction
from ranvier.notify.tokens import SyncToken


class DeviceLists:
    def __init__(self, keys: KeyService, rooms: RoomServer) -> None:
        self.keys = keys
        self.rooms = rooms
        self.queries = SyncQueries(rooms.store)
        #: room_id -> the position of its newest membership event written by this process.
        self._membership_streams: dict[str, int] = {}
        #: Before this position, membership events were written before the process started.
        self._known_from = rooms.positions.current

    @property
    def position(self) -> int:
        return self.keys.position

    # -- the persist hook: which rooms saw membership events -------------------------------

    def prepare(self, draft: Any, event: Event, item: PersistedEvent) -> bool | None:
        return True if event.type == MEMBER else None

    async def write(self, txn: Transaction, prepared: list[tuple[PersistedEvent, bool]]) -> None:
        """Nothing to store: the room server's own rows say who is a member."""

    def committed(self, prepared: list[tuple[PersistedEvent, bool]]) -> None:
        for item, _ in prepared:
            room_id = item.event.room_id
            self._membership_streams[room_id] = max(self._membership_streams.get(room_id, 0), item.stream_ordering)

    def _membership_moved(self, room_id: str, since: int) -> bool:
        if self.rooms.room_streams.get(room_id, 0) <= since:
            return False
        return since < self._known_from or self._membership_streams.get(room_id, 0) > since

    # -- reading ---------------------------------------------------------------------------

    async def changes(self, user_id: str, since: SyncToken, now: SyncToken, joined: list[str],
                      own_changes: dict[str, str]) -> dict[str, list[str]]:
        """{changed, left} in (since, now]; `joined` are the user's joined rooms now and
        `own_changes` {room: membership} the rooms where their membership changed."""
        changed: set[str] = set()
        if since.device_lists < now.device_lists:
            changed = await self.keys.store.device_lists_changed(user_id, since.device_lists, now.device_lists)
        started: set[str] = set()
        stopped: set[str] = set()
        if since.events < now.events:
            busy = [room_id for room_id in joined
                    if room_id not in own_changes and self._membership_moved(room_id, since.events)]
            if busy:
                for _, other, membership in await self.queries.room_membership_changes(
                        busy, since=since.events, upto=now.events):
                    _sort_membership(membership, {other}, started, stopped)
            for room_id, membership in own_changes.items():
                _sort_membership(membership, (await self.rooms.head(room_id)).joined, started, stopped)
        candidates = sorted((started | stopped) - {user_id})
        sharing = await self.keys.store.sharing_a_room(user_id, candidates) if candidates else set()
        changed |= started & sharing
        left = stopped - sharing - changed - {user_id}
        return {"changed": sorted(changed), "left": sorted(left)}

    async def changes_between(self, user_id: str, since: SyncToken, upto: SyncToken) -> dict[str, list[str]]:
        """GET /keys/changes: the same between two sync tokens, `upto` capped at now."""
        upto = SyncToken(events=min(upto.events, self.rooms.positions.current),
                         device_lists=min(upto.device_lists, self.position))
        own_changes = {room_id: membership for room_id, _, membership
                       in await self.queries.membership_changes(user_id, since=since.events, upto=upto.events)}
        memberships = await self.rooms.user_memberships(user_id)
        joined = [room_id for room_id, (membership, _) in memberships.items() if membership == JOIN]
        return await self.changes(user_id, since, upto, joined, own_changes)


def _sort_membership(membership: str, users, started: set[str], stopped: set[str]) -> None:
    """A join starts sharing the room with `users`, a leave or ban stops it; an invite or
    knock changes nothing."""
    if membership == JOIN:
        started.update(users)
    elif membership in (LEAVE, BAN):
        stopped.update(users)
