"""Simplified sliding sync (MSC4186): the rooms a client's lists and subscriptions select,
each with only what its connection has not been sent yet, long-polled.

It reads the same model as /sync (the room server's heads and `room_streams`, the
timeline, the notifier, push counts, account data, receipts, typing) and keeps what each
connection was sent in memory (`sliding_connections`). A response is computed from the
state its `pos` names:

1. the user's list of rooms (`sliding_lists`), filtered, ordered and cut to each list's ranges;
2. the rooms within the ranges and the subscribed rooms, each with the combination of
   every config that selects it (`sliding_rooms`): rooms with nothing new are left out;
3. the extensions (`sliding_extensions`).

With a `pos` and nothing to send, the request waits up to `timeout` for the notifier,
which the room server, receipts, typing and account data wake.
"""

from __future__ import annotations

import time
from typing import Any

from ranvier.requester import Requester
from ranvier.sync.service import MAX_TIMEOUT_MS, SyncService
from ranvier.sync.sliding_connections import Connections, ConnectionState
from ranvier.sync.sliding_extensions import Extensions
from ranvier.sync.sliding_lists import AccountMarks, RoomFacts, RoomLists
from ranvier.sync.sliding_request import RoomConfig, SlidingRequest
from ranvier.sync.sliding_rooms import RoomRequest, RoomResults
from ranvier.notify.tokens import SyncToken

FEATURE = "org.matrix.simplified_msc3575"


class SlidingSync:
    def __init__(self, sync: SyncService, facts: RoomFacts) -> None:
        self.sync = sync
        self.rooms = sync.rooms
        self.notifier = sync.notifier
        self.connections = Connections()
        self.lists = RoomLists(sync.rooms, sync.queries, facts)
        self.marks = AccountMarks(sync._stream("account_data"))
        self.results = RoomResults(sync, facts)
        self.extensions = Extensions(sync)

    async def sync_connection(self, requester: Requester, request: SlidingRequest) -> dict[str, Any]:
        """One request of a connection: the response and its new `pos`."""
        connection, base = self.connections.begin(requester.user_id, requester.device_id, request.conn_id,
                                                  request.pos)
        presence = self.sync._stream("presence")
        if presence is not None:
            await presence.set_from_sync(requester.user_id, request.set_presence or "online")
        timeout_ms = min(request.timeout_ms, MAX_TIMEOUT_MS) if request.pos is not None else 0
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            memberships = dict(await self.rooms.user_memberships(requester.user_id))
            if timeout_ms == 0:  # nothing to wait for: no subscription to make
                body, state, _ = await self._compute(requester, request, base, self.sync.current_token(), memberships)
                break
            keys = [f"user:{requester.user_id}"] + [f"room:{room_id}" for room_id, (m, _) in memberships.items()
                                                      if m in ("join", "invite", "knock")]
            with self.notifier.subscribe(keys) as subscription:
                body, state, news = await self._compute(requester, request, base, self.sync.current_token(),
                                                        memberships)
                remaining = deadline - time.monotonic()
                if news or remaining <= 0 or not await subscription.wait(remaining) or self.notifier.closed:
                    break
        return {"pos": self.connections.issue(connection, state), **body}

    async def _compute(self, requester: Requester, request: SlidingRequest, base: ConnectionState, now: SyncToken,
                       memberships: dict[str, tuple[str, int]]) -> tuple[dict[str, Any], ConnectionState, bool]:
        user_id = requester.user_id
        memberships = await self.sync._memberships_at(user_id, memberships, now.events)
        ignored = await self.sync._ignored_users(user_id, now.account_data)
        marks = await self.marks.of(user_id, now.account_data)
        listing = await self.lists.listing(user_id, memberships, base.rooms, ignored)
        windows = await self.lists.windows(listing, request.lists, marks)

        configs: dict[str, list[RoomConfig]] = {}
        names: dict[str, list[str]] = {}
        for name, (_, room_ids) in windows.items():
            for room_id in room_ids:
                configs.setdefault(room_id, []).append(request.lists[name].room)
                names.setdefault(room_id, []).append(name)
        entries = {room_id: listing.entry(room_id) for room_id in {*configs, *request.subscriptions}}
        subscribed = [room_id for room_id in request.subscriptions if entries[room_id] is not None]
        for room_id in subscribed:
            configs.setdefault(room_id, []).append(request.subscriptions[room_id])
        requests = {room_id: RoomRequest(entries[room_id], RoomConfig.combine(room_configs), names.get(room_id, []))
                    for room_id, room_configs in configs.items()}
        rooms, updated = await self.results.compute(requester, requests, base, now, marks, ignored)

        in_windows = {name: room_ids for name, (_, room_ids) in windows.items()}
        extensions = await self.extensions.compute(requester, request.extensions, in_windows, subscribed, memberships,
                                                   base, now)
        counts = {name: count for name, (count, _) in windows.items()}
        state = ConnectionState(now, {**base.rooms, **updated} if updated else base.rooms, counts,
                                extensions.rooms, extensions.started)
        news = base.token is None or bool(rooms) or extensions.has_news or counts != dict(base.list_counts)
        body = {"lists": {name: {"count": count} for name, count in counts.items()}, "rooms": rooms,
                "extensions": extensions.body}
        return body, state, news
