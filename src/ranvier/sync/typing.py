"""Typing notifications: who is typing in each room, in memory, with one expiry timer per typist.

Typing is ephemeral, so nothing is stored. Positions start at the wall clock in
milliseconds and then count changes, so after a restart they stay above any position
handed out before it; a position above the current one (a clock set back) is treated
as 0 and gets every room's typists.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Iterable

from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of
from ranvier.rooms.service import RoomServer
from ranvier.notify.notifier import Notifier

#: The longest a typing notification lasts without being renewed.
MAX_TIMEOUT_MS = 120_000
DEFAULT_TIMEOUT_MS = 30_000


class Typing:
    def __init__(self, rooms: RoomServer, notifier: Notifier) -> None:
        self.rooms = rooms
        self.notifier = notifier
        self._position = int(time.time() * 1000)
        #: room_id -> {user_id: expiry timer}
        self._typing: dict[str, dict[str, asyncio.TimerHandle]] = {}
        #: room_id -> position of the room's last change
        self._changed: dict[str, int] = {}
        #: Told when a local user starts or stops typing (other servers in the room are sent it):
        #: listener(room_id, user_id, typing).
        self.local_listeners: list[Callable[[str, str, bool], Awaitable[None]]] = []

    @property
    def position(self) -> int:
        return self._position

    async def set_typing(self, user_id: str, room_id: str, typing: bool, timeout_ms: int | None) -> None:
        """Start (or renew) or stop `user_id` typing in `room_id`; they must be joined."""
        head = await self.rooms.head(room_id)
        if user_id not in head.joined:
            raise MatrixError("M_FORBIDDEN", "You are not joined to this room")
        typists = self._typing.setdefault(room_id, {})
        timer = typists.pop(user_id, None)
        if timer is not None:
            timer.cancel()
        if typing:
            seconds = min(timeout_ms if timeout_ms is not None else DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS) / 1000
            typists[user_id] = asyncio.get_running_loop().call_later(seconds, self._expire, room_id, user_id)
        if (timer is None) == typing:
            self._changed_room(room_id)
        elif not typists:
            self._typing.pop(room_id, None)
        if self.local_listeners and domain_of(user_id) == self.rooms.server_name:
            for listener in self.local_listeners:
                await listener(room_id, user_id, typing)

    def _expire(self, room_id: str, user_id: str) -> None:
        typists = self._typing.get(room_id)
        if typists is not None and typists.pop(user_id, None) is not None:
            self._changed_room(room_id)

    def _changed_room(self, room_id: str) -> None:
        self._position += 1
        self._changed[room_id] = self._position
        if not self._typing.get(room_id):
            self._typing.pop(room_id, None)
        self.notifier.notify([f"room:{room_id}"])

    def typists(self, room_id: str) -> list[str]:
        return sorted(self._typing.get(room_id, ()))

    def events(self, room_ids: Iterable[str], since: int) -> dict[str, dict]:
        """The m.typing event of each room whose typists changed after `since`
        (of each room with someone typing when `since` is 0)."""
        if since > self._position:
            since = 0
        result = {}
        for room_id in room_ids:
            if (since == 0 and room_id in self._typing) or (since and self._changed.get(room_id, 0) > since):
                result[room_id] = {"type": "m.typing", "content": {"user_ids": self.typists(room_id)}}
        return result

    def stop(self) -> None:
        for typists in self._typing.values():
            for timer in typists.values():
                timer.cancel()
        self._typing.clear()
