"""Account data, global and per room, tags included: a stream /sync reads by position.

Every write takes the next stream position and overwrites the entry's row, so the rows
written after a position are exactly what a client with that position has not seen.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from ranvier.errors import MatrixError
from ranvier.events.identifiers import is_valid_user_id
from ranvier.notify.notifier import Notifier
from ranvier.notify.streams import StreamPositions
from ranvier.users.personal_store import AccountDataStore

#: Types the server manages; clients may read them but not set them (405 M_BAD_JSON).
SERVER_MANAGED = ("m.fully_read", "m.push_rules")
IGNORED_USER_LIST = "m.ignored_user_list"
TAGS = "m.tag"
DIRECT = "m.direct"


def check_ignored_user_list(user_id: str, content: dict[str, Any]) -> None:
    ignored = content.get("ignored_users")
    if not isinstance(ignored, dict):
        raise MatrixError("M_BAD_JSON", "ignored_users must be an object of user IDs")
    for other, value in ignored.items():
        if not is_valid_user_id(other):
            raise MatrixError("M_INVALID_PARAM", f"{other!r} in ignored_users is not a user ID")
        if other == user_id:
            raise MatrixError("M_INVALID_PARAM", "You cannot ignore yourself")
        if not isinstance(value, dict):
            raise MatrixError("M_BAD_JSON", "Each entry of ignored_users must be an object")


class AccountData:
    def __init__(self, store: AccountDataStore, notifier: Notifier) -> None:
        self.store = store
        self.notifier = notifier
        self.positions = StreamPositions(0)
        #: Tag edits read, change and write the m.tag entry; one at a time per process.
        self._tag_lock = asyncio.Lock()
        #: Global types whose content another service computes for a user (m.push_rules: the
        #: push service merges the user's rules with the current defaults). Their stored row
        #: marks the stream position of each change; every user has one, stored or not.
        self.computed: dict[str, Callable[[str], dict[str, Any]]] = {}

    async def start(self) -> None:
        self.positions = StreamPositions(await self.store.max_stream_id())

    @property
    def position(self) -> int:
        return self.positions.current

    # -- reading -------------------------------------------------------------------------

    async def get(self, user_id: str, data_type: str, room_id: str | None = None) -> dict[str, Any]:
        if room_id is None and data_type in self.computed:
            return self.computed[data_type](user_id)
        content = await self.store.get(user_id, room_id or "", data_type)
        if content is None:
            raise MatrixError("M_NOT_FOUND", f"No account data of type {data_type}")
        return content

    async def changes(self, user_id: str, since: int, upto: int) -> tuple[list[dict], dict[str, list[dict]]]:
        """(global events, {room_id: room events}) written in (since, upto]; since 0 is everything."""
        global_events: list[dict] = []
        room_events: dict[str, list[dict]] = {}
        computed = set(self.computed) if since == 0 else set()
        for room_id, data_type, content in await self.store.changed(user_id, since, upto):
            event = {"type": data_type, "content": content}
            if room_id:
                room_events.setdefault(room_id, []).append(event)
            elif data_type in self.computed:
                computed.add(data_type)
            else:
                global_events.append(event)
        global_events += [{"type": data_type, "content": self.computed[data_type](user_id)}
                          for data_type in sorted(computed)]
        return global_events, room_events

    async def of_rooms(self, user_id: str, room_ids: list[str], upto: int) -> dict[str, list[dict]]:
        """{room_id: events} of every entry the user holds for these rooms, up to `upto`: all a
        room's account data, for a room the user has just joined (its tags may be older)."""
        room_events: dict[str, list[dict]] = {}
        if room_ids:
            for room_id, data_type, content in await self.store.of_rooms(user_id, room_ids, upto):
                room_events.setdefault(room_id, []).append({"type": data_type, "content": content})
        return room_events

    async def entries_of_type(self, data_type: str) -> list[tuple[str, dict[str, Any]]]:
        """(user_id, content) of every user's stored global entry of one type."""
        return await self.store.global_entries_of_type(data_type)

    async def ignored_users(self, user_id: str) -> set[str]:
        content = await self.store.get(user_id, "", IGNORED_USER_LIST)
        ignored = content.get("ignored_users") if content else None
        return set(ignored) if isinstance(ignored, dict) else set()

    # -- writing -------------------------------------------------------------------------

    async def put_by_client(self, user_id: str, data_type: str, content: dict[str, Any],
                            room_id: str | None = None) -> None:
        """A client's write: server-managed types are refused, m.ignored_user_list checked."""
        if data_type in SERVER_MANAGED:
            raise MatrixError("M_BAD_JSON", f"{data_type} is managed by the server", status=405)
        if data_type == IGNORED_USER_LIST and room_id is None:
            check_ignored_user_list(user_id, content)
        await self.put(user_id, data_type, content, room_id)

    async def put(self, user_id: str, data_type: str, content: dict[str, Any], room_id: str | None = None) -> None:
        """Store an entry at the next stream position and wake the user's syncs."""
        position = self.positions.allocate()
        try:
            await self.store.put(user_id, room_id or "", data_type, content, position)
        finally:
            self.positions.finish(position)
        self.notifier.notify([f"user:{user_id}"])

    # -- tags ----------------------------------------------------------------------------

    async def tags(self, user_id: str, room_id: str) -> dict[str, Any]:
        content = await self.store.get(user_id, room_id, TAGS)
        tags = content.get("tags") if content else None
        return tags if isinstance(tags, dict) else {}

    async def set_tag(self, user_id: str, room_id: str, tag: str, info: dict[str, Any]) -> None:
        order = info.get("order")
        if "order" in info and (not isinstance(order, (int, float)) or isinstance(order, bool)):
            raise MatrixError("M_BAD_JSON", "order must be a number")
        async with self._tag_lock:
            tags = await self.tags(user_id, room_id)
            tags[tag] = info
            await self.put(user_id, TAGS, {"tags": tags}, room_id)

    async def delete_tag(self, user_id: str, room_id: str, tag: str) -> None:
        async with self._tag_lock:
            tags = await self.tags(user_id, room_id)
            if tag in tags:
                del tags[tag]
                await self.put(user_id, TAGS, {"tags": tags}, room_id)

    # -- room upgrades -------------------------------------------------------------------

    async def copy_room_entries(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        """The user's tags of a room are given to its replacement (a room upgrade), and each
        m.direct list holding the old room gets the new one, as Synapse does. Nothing is
        written when there is nothing to copy."""
        async with self._tag_lock:
            current = await self.tags(user_id, new_room_id)
            tags = {**current, **await self.tags(user_id, old_room_id)}
            if tags != current:
                await self.put(user_id, TAGS, {"tags": tags}, new_room_id)
        direct = await self.store.get(user_id, "", DIRECT)
        if not direct:
            return
        lists = {other: rooms + [new_room_id] if isinstance(rooms, list) and old_room_id in rooms
                 and new_room_id not in rooms else rooms for other, rooms in direct.items()}
        if lists != direct:
            await self.put(user_id, DIRECT, lists)
