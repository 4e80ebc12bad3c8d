"""Pruning notification rows that nothing needs any more, in the background.

A row is kept while it counts for someone: a room's row while a joined local member has
not read up to it (nor joined after it), a member's own row while it counts for them, or
while the room's row of the same event stays (their own row says what the room's row is
not for them). Past that, a row stays for what /notifications and pushers show: a day for
a notification, 30 days for a highlight, as Synapse keeps them. Older read rows go, a
batch of rooms (then of users) per transaction, once an hour.
"""

from __future__ import annotations

import asyncio
import time

from ranvier.push.store import PushStore

DAY_MS = 24 * 3600 * 1000
#: How long a read notification stays listed in /notifications (and for pushers to send).
NOTIFICATION_RETENTION_MS = DAY_MS
#: How long a read highlight stays listed.
HIGHLIGHT_RETENTION_MS = 30 * DAY_MS
PRUNE_INTERVAL_S = 3600
#: Rooms (or users) pruned per transaction.
PRUNE_BATCH = 100


class NotificationPruner:
    def __init__(self, store: PushStore, *, server_name: str) -> None:
        self.store = store
        escaped = server_name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        self._local_pattern = "%:" + escaped

    async def prune(self, now_ms: int | None = None) -> None:
        """Remove what no count needs and the retention has passed, as of `now_ms`."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        plain = await self.store.stream_before(now_ms - NOTIFICATION_RETENTION_MS)
        highlight = await self.store.stream_before(now_ms - HIGHLIGHT_RETENTION_MS)
        if plain <= 0:
            return
        after = ""
        while rooms := await self.store.rooms_after(after, PRUNE_BATCH):
            after = rooms[-1]
            await self._prune_rooms(rooms, plain, highlight)
            await asyncio.sleep(0)  # let requests in between batches
        after = ""
        while users := await self.store.users_after(after, PRUNE_BATCH):
            after = users[-1]
            await self.store.prune_former_members(users, plain, highlight)
            await asyncio.sleep(0)

    async def _prune_rooms(self, rooms: list[str], plain: int, highlight: int) -> None:
        floors = await self.store.read_floors(rooms, self._local_pattern)
        no_member = 2**62
        main_cut = dict.fromkeys(rooms, no_member)
        thread_cut = dict.fromkeys(rooms, no_member)
        for room_id, _, main_floor, thread_floor in floors:
            main_cut[room_id] = min(main_cut[room_id], main_floor)
            thread_cut[room_id] = min(thread_cut[room_id], thread_floor)
        await self.store.prune_rooms(
            [(room_id, min(main_cut[room_id], plain), min(main_cut[room_id], highlight),
              min(thread_cut[room_id], plain), min(thread_cut[room_id], highlight)) for room_id in rooms],
            [(user_id, room_id, min(main_floor, plain), min(main_floor, highlight),
              min(thread_floor, plain), min(thread_floor, highlight))
             for room_id, user_id, main_floor, thread_floor in floors],
        )
