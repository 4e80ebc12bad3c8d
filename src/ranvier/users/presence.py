"""Presence: online, unavailable or offline, a status message and the last active time.

The stored state changes when a user says so (PUT /presence, /sync's set_presence) and
when time passes: online users idle for 5 minutes become unavailable, users who have
not synced or set their presence for 30 minutes become offline. Those two transitions
are made by one periodic sweep (a single indexed query a minute for the whole server),
not by a timer per user, so they reach the stream at most a sweep interval late.
`last_active_ago` is computed from the stored timestamp whenever presence is read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any, Awaitable, Callable

from ranvier import background
from ranvier.errors import MatrixError
from ranvier.notify.notifier import Notifier
from ranvier.notify.streams import StreamPositions
from ranvier.users.personal_store import PresenceRow, PresenceStore

log = logging.getLogger("ranvier.presence")

ONLINE, UNAVAILABLE, OFFLINE = "online", "unavailable", "offline"
STATES = (ONLINE, UNAVAILABLE, OFFLINE)
IDLE_AFTER_MS = 5 * 60_000
OFFLINE_AFTER_MS = 30 * 60_000
SWEEP_INTERVAL_S = 60.0
#: Activity this recent counts as "currently active", and refreshing last_active or the
#: last-seen time more often than this is not worth a write.
ACTIVE_WINDOW_MS = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


class Presence:
    def __init__(self, store: PresenceStore, notifier: Notifier, *, idle_after_ms: int = IDLE_AFTER_MS,
                 offline_after_ms: int = OFFLINE_AFTER_MS, sweep_interval_s: float = SWEEP_INTERVAL_S) -> None:
        self.store = store
        self.notifier = notifier
        self.idle_after_ms = idle_after_ms
        self.offline_after_ms = offline_after_ms
        self.sweep_interval_s = sweep_interval_s
        self.positions = StreamPositions(0)
        #: One change of a user's presence at a time (they read, then write, the row).
        self._lock = asyncio.Lock()
        #: Written through on every change, so a /sync's set_presence rarely needs a query.
        self._rows: dict[str, PresenceRow | None] = {}
        self._sweeper: asyncio.Task | None = None
        #: Told of every change written (other servers are sent their local users'):
        #: listener(rows as written).
        self.listeners: list[Callable[[list[PresenceRow]], Awaitable[None]]] = []

    async def start(self) -> None:
        self.positions = StreamPositions(await self.store.max_stream_id())
        self._sweeper = background.every(self.sweep_interval_s, self.sweep, "presence sweep")

    async def stop(self) -> None:
        await background.cancel(self._sweeper)
        self._sweeper = None

    @property
    def position(self) -> int:
        return self.positions.current

    # -- reading -------------------------------------------------------------------------

    def content(self, row: PresenceRow | None, now: int) -> dict[str, Any]:
        if row is None:
            return {"presence": OFFLINE}
        content: dict[str, Any] = {"presence": row.state, "last_active_ago": max(0, now - row.last_active_ts)}
        if row.state == ONLINE:
            content["currently_active"] = now - row.last_active_ts < ACTIVE_WINDOW_MS
        if row.status_msg is not None:
            content["status_msg"] = row.status_msg
        return content

    async def get(self, requester: str, user_id: str) -> dict[str, Any]:
        """GET /presence: for oneself and for users sharing a joined room with the requester."""
        if requester != user_id and not await self.store.shares_a_room(requester, user_id):
            raise MatrixError("M_FORBIDDEN", "You are not allowed to see their presence")
        return self.content(await self._row(user_id), now_ms())

    async def _row(self, user_id: str) -> PresenceRow | None:
        if user_id not in self._rows:
            self._rows[user_id] = await self.store.get(user_id)
        return self._rows[user_id]

    async def changed_rows(self, user_id: str, since: int, upto: int) -> list[PresenceRow]:
        """The rows of the user and of users sharing a room with them, changed in (since, upto]."""
        return await self.store.changed_for(user_id, since, upto)

    async def events(self, user_id: str, since: int, upto: int) -> list[dict]:
        """m.presence events of the user and of users sharing a room with them, changed in (since, upto]."""
        now = now_ms()
        return [{"type": "m.presence", "sender": row.user_id, "content": self.content(row, now)}
                for row in await self.changed_rows(user_id, since, upto)]

    async def visible_rows(self, viewer: str, user_ids: list[str]) -> dict[str, PresenceRow]:
        """The stored presence of those of `user_ids` the viewer may see (themself and users
        sharing a joined room); one query. A user missing from the result reads offline."""
        return await self.store.visible_rows(viewer, user_ids)

    async def sharing_a_room_with(self, viewer: str, user_ids: list[str]) -> set[str]:
        """Those of `user_ids` whose presence the viewer may see."""
        return await self.store.sharing_a_room_with(viewer, user_ids) | ({viewer} & set(user_ids))

    # -- writing -------------------------------------------------------------------------

    async def set_status(self, user_id: str, state: str, status_msg: str | None) -> int:
        """PUT /presence: the user's own state and status message; online counts as activity.
        Returns the stream position of the change."""
        if state not in STATES:
            raise MatrixError("M_INVALID_PARAM", f"presence must be one of {', '.join(STATES)}")
        async with self._lock:
            now = now_ms()
            row = await self._row(user_id)
            last_active = now if state == ONLINE or row is None else row.last_active_ts
            written = await self._write([PresenceRow(user_id, state, status_msg, last_active, now, 0)])
        return written[0].stream_id

    async def set_from_sync(self, user_id: str, state: str) -> None:
        """/sync's set_presence (online when absent): online marks the user active,
        unavailable idle; offline (the spec's "do not mark me online") changes nothing.
        Writes only what clients would see change, and the last-seen time at most every
        half minute; anything else is answered from memory, without a lock."""
        if state not in STATES:
            raise MatrixError("M_INVALID_PARAM", f"set_presence must be one of {', '.join(STATES)}")
        if state == OFFLINE:
            return
        cached = self._rows.get(user_id)
        if cached is not None and not self._sync_changes(cached, state, now_ms()):
            return
        async with self._lock:
            now = now_ms()
            row = await self._row(user_id)
            if row is None:
                await self._write([PresenceRow(user_id, state, None, now, now, 0)])
                return
            last_active = now if state == ONLINE else row.last_active_ts
            if self._visible_change(row, state, now):
                await self._write([replace(row, state=state, last_active_ts=last_active, last_seen_ts=now)])
            elif self._sync_changes(row, state, now):
                # Seen again and nothing visible changed: refresh the timestamps, keep the stream position.
                refreshed = replace(row, last_active_ts=last_active, last_seen_ts=now)
                await self.store.put([refreshed])
                self._rows[user_id] = refreshed

    async def set_remote(self, user_id: str, state: Any, status_msg: str | None, last_active_ago: int) -> None:
        """Another server's user's presence, as their server tells it (an unknown state is
        ignored); seen now, active `last_active_ago` ms ago."""
        if state not in STATES:
            return
        async with self._lock:
            now = now_ms()
            await self._write([PresenceRow(user_id, state, status_msg, now - last_active_ago, now, 0)])

    async def active(self, user_id: str) -> None:
        """A pro-active event of the user (a message or state event sent): online and
        active now, as the spec's "last active ago" asks; from unavailable or offline too."""
        await self.set_from_sync(user_id, ONLINE)

    @staticmethod
    def _visible_change(row: PresenceRow, state: str, now: int) -> bool:
        """A new state, or online again after the active window ran out (currently_active flips)."""
        was_active = row.state == ONLINE and now - row.last_active_ts < ACTIVE_WINDOW_MS
        return state != row.state or (state == ONLINE and not was_active)

    def _sync_changes(self, row: PresenceRow, state: str, now: int) -> bool:
        return self._visible_change(row, state, now) or now - row.last_seen_ts >= ACTIVE_WINDOW_MS // 2

    async def sweep(self, now: int | None = None) -> int:
        """Make idle users unavailable and gone users offline; returns how many changed."""
        now = now_ms() if now is None else now
        async with self._lock:
            expired = await self.store.expired(now - self.idle_after_ms, now - self.offline_after_ms)
            changed = [replace(row, state=OFFLINE if row.last_seen_ts < now - self.offline_after_ms else UNAVAILABLE)
                       for row in expired]
            await self._write(changed)
        return len(changed)

    async def _write(self, rows: list[PresenceRow]) -> list[PresenceRow]:
        """Store changed presence at new stream positions and wake whoever shares a room with
        them; returns the rows as written."""
        if not rows:
            return rows
        positions = [self.positions.allocate() for _ in rows]
        rows = [replace(row, stream_id=position) for row, position in zip(rows, positions)]
        try:
            await self.store.put(rows)
        finally:
            for position in positions:
                self.positions.finish(position)
        self._rows.update((row.user_id, row) for row in rows)
        user_ids = [row.user_id for row in rows]
        rooms = await self.store.joined_rooms_of(user_ids)
        self.notifier.notify([*(f"user:{u}" for u in user_ids), *(f"room:{r}" for r in rooms)])
        for listener in self.listeners:
            await listener(rows)
        return rows
