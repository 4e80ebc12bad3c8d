"""The event stream and room snapshot that today's spec still serves, deprecated:
`GET /events` (also peeking into one world-readable room) and `GET /rooms/{roomId}/initialSync`.

/events is not /sync with another shape: it returns every event after its token, in
stream order across rooms, none skipped. A response holds at most `STREAM_PAGE` room
events; when more are waiting its `end` stops after the last one returned, so the next
call continues there.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from ranvier.errors import MatrixError
from ranvier.requester import Requester
from ranvier.rooms.store import EventRow
from ranvier.rooms.visibility import is_visible
from ranvier.sync.filters import EventFilter
from ranvier.sync.service import MAX_TIMEOUT_MS, SyncService
from ranvier.sync.timeline import Timeline
from ranvier.rooms.tokens import position_after, room_token
from ranvier.notify.tokens import SyncToken

#: The most room events one /events response carries.
STREAM_PAGE = 100
_HELD = ("join", "invite", "knock")


class LegacySync:
    def __init__(self, sync: SyncService, timeline: Timeline) -> None:
        self.sync = sync
        self.timeline = timeline
        self.rooms = sync.rooms

    def _stream(self, name: str):
        return getattr(self.sync.streams, name, None)

    # -- /events -------------------------------------------------------------------------

    async def events(self, requester: Requester, *, since: str | None, timeout_ms: int,
                     room_id: str | None) -> dict[str, Any]:
        """Everything after `since` (the present when absent) for the user's rooms, or for
        `room_id` alone (a member, or anyone when it is world-readable); long-polled."""
        start = SyncToken.parse(since) if since else self.sync.current_token()
        if room_id is not None:
            await self.timeline.reader_history(room_id, requester.user_id)  # M_FORBIDDEN for strangers
        deadline = time.monotonic() + min(timeout_ms, MAX_TIMEOUT_MS) / 1000
        position = start
        while True:
            memberships = await self.rooms.user_memberships(requester.user_id)
            if room_id is not None:
                keys = [f"room:{room_id}"]
            else:
                keys = [f"user:{requester.user_id}"] + [f"room:{r}" for r, (m, _) in memberships.items() if m in _HELD]
            with self.sync.notifier.subscribe(keys) as subscription:
                now = self.sync.current_token()
                chunk, position = await self._changes(requester, position, now, memberships, room_id)
                if chunk:
                    return {"chunk": chunk, "start": start.encode(), "end": position.encode()}
                if position.events < now.events:  # a full page the reader may not see: scan on
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await subscription.wait(remaining) or self.sync.notifier.closed:
                    return {"chunk": [], "start": start.encode(), "end": position.encode()}

    async def _changes(self, requester: Requester, since: SyncToken, now: SyncToken,
                       memberships: dict[str, tuple[str, int]], room_id: str | None) -> tuple[list[dict], SyncToken]:
        """The chunk after `since` and the token just after it."""
        user_id = requester.user_id
        if room_id is not None:
            rooms = [room_id]
        else:  # held rooms, and rooms left since the token (their events up to the leave)
            rooms = [r for r, (m, stream) in memberships.items() if m in _HELD or stream > since.events]
        changed = [r for r in rooms if self.rooms.room_streams.get(r, 0) > since.events]
        rows: list[EventRow] = []
        end = now
        if changed and since.events < now.events:
            rows = await self.sync.queries.stream_page(dict.fromkeys(changed, now.events), after=since.events,
                                                       backwards=False, limit=STREAM_PAGE + 1)
            if len(rows) > STREAM_PAGE:
                rows = rows[:STREAM_PAGE]
                end = dataclasses.replace(now, events=rows[-1].stream_ordering)
        rows = await self._visible(user_id, rows)
        chunk = await self.timeline.serialize(rows, requester)
        chunk += await self._ephemeral(user_id, [r for r in rooms if room_id is not None or memberships[r][0] == "join"],
                                       since, end)
        presence = self._stream("presence")
        if room_id is None and presence is not None and since.presence < end.presence:
            chunk += await presence.events(user_id, since.presence, end.presence)
        return chunk, end

    async def _visible(self, user_id: str, rows: list[EventRow]) -> list[EventRow]:
        """History visibility for the reader, and no events of users they ignore."""
        if not rows:
            return rows
        account_data = self._stream("account_data")
        ignored = await account_data.ignored_users(user_id) if account_data is not None else set()
        histories = await self.sync.queries.membership_histories(user_id, list({row.event.room_id for row in rows}))
        return [row for row in rows if is_visible(row, user_id, histories[row.event.room_id])
                and (row.event.sender not in ignored or row.event.is_state)]

    async def _ephemeral(self, user_id: str, room_ids: list[str], since: SyncToken, upto: SyncToken) -> list[dict]:
        """Typing and receipts of the rooms, each event with its room_id."""
        events: list[dict] = []
        typing = self._stream("typing")
        if typing is not None and since.typing < upto.typing:
            events += [{**event, "room_id": r} for r, event in typing.events(room_ids, since.typing).items()]
        receipts = self._stream("receipts")
        if receipts is not None and since.receipts < upto.receipts:
            changed = await receipts.events(user_id, room_ids, since.receipts, upto.receipts)
            events += [{**event, "room_id": r} for r, event in changed.items()]
        return events

    # -- /rooms/{roomId}/initialSync -------------------------------------------------------

    async def room_snapshot(self, requester: Requester, room_id: str, limit: int) -> dict[str, Any]:
        """A room as its member sees it now, as a former member saw it when they left
        (up to and with their leave), or as anyone sees a world-readable room."""
        user_id = requester.user_id
        head = await self.rooms.head(room_id)  # M_NOT_FOUND for unknown rooms
        membership = await self.rooms.store.membership_of(room_id, user_id)
        kind = membership[0] if membership is not None else None
        now = self.sync.current_token()
        visibility = head.state.get(("m.room.history_visibility", ""))
        world_readable = visibility is not None and visibility.content.get("history_visibility") == "world_readable"
        if kind in ("leave", "ban"):
            leave_id = await self.rooms.store.membership_event_id(room_id, user_id)
            leave = (await self.rooms.store.get_event_rows([leave_id]))[leave_id]
            state_ids = await self.timeline.state_at(leave)
            end = room_token(position_after(leave.key))
        elif kind == "join" or world_readable:
            state_ids = {key: event.event_id for key, event in head.state.items()}
            end = now.encode()
        else:
            raise MatrixError("M_FORBIDDEN", "You are not a member of this room and it is not world-readable")
        page = await self.timeline.messages(requester, room_id, from_token=end, to_token=None, direction="b",
                                            limit=limit, event_filter=EventFilter())
        messages: dict[str, Any] = {"chunk": page["chunk"][::-1], "end": end}
        if "end" in page:
            messages["start"] = page["end"]
        state_rows = await self.rooms.store.get_event_rows(state_ids.values())
        snapshot: dict[str, Any] = {
            "room_id": room_id,
            "messages": messages,
            "state": await self.timeline.serialize(list(state_rows.values()), requester),
            "visibility": "public" if (await self.rooms.store.get_room(room_id)).is_public else "private",
            "account_data": await self._room_account_data(user_id, room_id, now),
            "presence": [],
            "receipts": [],
        }
        if kind in ("join", "invite", "leave", "ban"):
            snapshot["membership"] = kind
        if kind not in ("leave", "ban"):  # current presence and receipts are for those still there
            snapshot["presence"] = await self._member_presence(user_id, head.joined, now)
            receipts = self._stream("receipts")
            if receipts is not None:
                snapshot["receipts"] = [{**event, "room_id": room_id} for event in
                                        (await receipts.events(user_id, [room_id], 0, now.receipts)).values()]
        return snapshot

    async def _room_account_data(self, user_id: str, room_id: str, now: SyncToken) -> list[dict]:
        account_data = self._stream("account_data")
        if account_data is None:
            return []
        _, per_room = await account_data.changes(user_id, 0, now.account_data)
        return per_room.get(room_id, [])

    async def _member_presence(self, user_id: str, joined: dict[str, Any], now: SyncToken) -> list[dict]:
        presence = self._stream("presence")
        if presence is None:
            return []
        return [event for event in await presence.events(user_id, 0, now.presence) if event["sender"] in joined]

