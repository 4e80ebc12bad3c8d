"""The read model of a room's history for clients: /messages, /context, /event, /state,
/members, each filtered by history visibility for the reader.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Awaitable, Callable

from ranvier.errors import MatrixError
from ranvier.events.client_format import client_unsigned, encoded_sync_event, serialize_event
from ranvier.events.model import MEMBER, Event
from ranvier.events.redaction import redact
from ranvier.requester import Requester
from ranvier.rooms.service import RoomServer
from ranvier.rooms.store import EventRow, RoomStore, StateKey
from ranvier.rooms.visibility import MembershipHistory, is_visible, joined_at
from ranvier.sync.filters import EventFilter
from ranvier.rooms.tokens import RoomPosition, position_after, room_position, room_token

#: How many extra rows a filtered page may scan before returning what it found.
_SCAN_FACTOR = 10
MAX_PAGE = 1000
#: A reader with no device and no user: what is left when nothing depends on the reader.
_NO_READER = Requester(user_id="", device_id="", is_guest=False, token_hash="")


class Timeline:
    def __init__(self, rooms: RoomServer) -> None:
        self.rooms = rooms
        self.store: RoomStore = rooms.store
        #: The relations service (rooms.relations), set by the server: bundled aggregations.
        self.relations = None
        #: user_id -> the users they ignore (m.ignored_user_list), set by the server.
        self.ignored_users: Callable[[str], Awaitable[set[str]]] | None = None
        #: The erased accounts (users.erasure.Erasure.erased), set by the server.
        self.erased: set[str] = set()
        #: Set by the server when federation is on: fetch older history of a room from
        #: another server, backfill(room_id) -> how many events were added.
        self.backfill: Callable[[str], Awaitable[int]] | None = None

    # -- who may read --------------------------------------------------------------------

    async def reader_history(self, room_id: str, user_id: str) -> MembershipHistory:
        """The reader's membership history; M_FORBIDDEN if they may see nothing of the room,
        an unknown room included (as the spec's answers to non-members say, and so that
        a room's existence is not given away)."""
        try:
            head = await self.rooms.head(room_id)
        except MatrixError:
            raise MatrixError("M_FORBIDDEN", "You are not a member of this room") from None
        history = await self.store.membership_history(room_id, user_id)
        if not history:
            visibility = head.state.get(("m.room.history_visibility", ""))
            if visibility is None or visibility.content.get("history_visibility") != "world_readable":
                raise MatrixError("M_FORBIDDEN", "You are not a member of this room")
        return history

    # -- serialisation -------------------------------------------------------------------

    async def serialize(self, rows: list[EventRow], requester: Requester, *, event_filter_fields: list[str] | None = None,
                        as_client: bool = True, for_sync: bool = False) -> list[Any]:
        """Client events: redacted where redacted, with prev_content and the reader's own txn IDs.
        `for_sync`: in /sync's form (ClientEventWithoutRoomID), encoded once
        (`encoded_sync_event`) unless fields are filtered or the federation format is asked for.

        An erased account's event is served redacted to readers who were not joined when
        it was sent (the spec's erasure)."""
        if not rows:
            return []
        linked = [row.redacted_by for row in rows if row.redacted_by] + [
            row.replaces_state for row in rows if row.replaces_state
        ]
        others = await self.store.get_event_rows(linked) if linked else {}
        bundles = await self.relations.bundle(rows, requester, self.serialize) if self.relations else {}
        erased = self.erased
        erased_in = {row.event.room_id for row in rows if row.event.sender in erased} if erased else ()
        histories = {room_id: await self.store.membership_history(room_id, requester.user_id) for room_id in erased_in}
        now = int(time.time() * 1000)
        device_id, user_id = requester.device_id, requester.user_id
        encoded = for_sync and as_client and event_filter_fields is None
        result = []
        for row in rows:
            event = row.event
            redaction = others.get(row.redacted_by) if row.redacted_by else None
            if redaction is not None or (erased and event.sender in erased
                                         and not joined_at(histories[event.room_id], row.stream_ordering)):
                event = Event(redact(event.pdu, event.room_version), event.room_version, event.event_id)
            replaced = others.get(row.replaces_state) if row.replaces_state else None
            prev_content = None
            if replaced is not None:
                prev_event = replaced.event
                if replaced.redacted_by:
                    prev_event = Event(redact(prev_event.pdu, prev_event.room_version), prev_event.room_version,
                                       prev_event.event_id)
                prev_content = prev_event.content
            own_txn = row.txn_id if row.txn_device is not None and row.txn_device == device_id \
                and event.sender == user_id else None
            unsigned = client_unsigned(
                event, now_ms=now, as_client=as_client, transaction_id=own_txn, prev_content=prev_content,
                redacted_because=redaction.event if redaction else None, replaces_state=row.replaces_state,
                relations=bundles.get(event.event_id))
            result.append(encoded_sync_event(event, unsigned) if encoded else serialize_event(
                event, unsigned, as_client=as_client, event_fields=event_filter_fields, with_room_id=not for_sync))
        return result

    async def serialize_for_everyone(self, rows: list[EventRow], *, event_filter_fields: list[str] | None = None,
                                     as_client: bool = True) -> list[Any] | None:
        """The events in /sync's form as every reader sees them, for sharing between readers; None
        when a part depends on the reader: bundled aggregations (which children count
        depends on who reads), or an erased sender (redacted for some readers only).
        Transaction IDs are left out: the sending device's own copy is made for it alone."""
        if any(row.event.sender in self.erased for row in rows) or (
                self.relations is not None and await self.relations.has_children(rows)):
            return None
        return await self.serialize(rows, _NO_READER, event_filter_fields=event_filter_fields, as_client=as_client,
                                    for_sync=True)

    # -- single events -------------------------------------------------------------------

    async def event(self, requester: Requester, room_id: str, event_id: str) -> dict[str, Any]:
        """One event; M_NOT_FOUND as well when the reader may not see it (or anything of
        the room), so its existence is not given away."""
        try:
            history = await self.reader_history(room_id, requester.user_id)
        except MatrixError:
            raise MatrixError("M_NOT_FOUND", "Event not found") from None
        row = (await self.store.get_event_rows([event_id])).get(event_id)
        if row is None or row.event.room_id != room_id or not is_visible(row, requester.user_id, history):
            raise MatrixError("M_NOT_FOUND", "Event not found")
        return (await self.serialize([row], requester))[0]

    # -- pages ---------------------------------------------------------------------------

    async def position_of(self, room_id: str, token: str) -> RoomPosition:
        """Where a pagination token stands in the room's (depth, stream) order (`room_position`)."""
        return await room_position(token, partial(self.store.last_event_position, room_id))

    async def _ignored(self, user_id: str) -> set[str]:
        return await self.ignored_users(user_id) if self.ignored_users is not None else set()

    async def _page(self, room_id: str, user_id: str, history: MembershipHistory | None, *,
                    start: RoomPosition | None, bound: RoomPosition | None, backwards: bool, limit: int,
                    event_filter: EventFilter, ignored: set[str]) -> tuple[list[EventRow], RoomPosition | None]:
        """Up to `limit` visible (all with no `history`), matching events from `start` towards
        `bound`, none sent by a user the reader ignores (their state events excepted); and
        where the scan stopped."""
        found: list[EventRow] = []
        cursor = start
        scanned_budget = max(limit, 1) * _SCAN_FACTOR
        while len(found) < limit and scanned_budget > 0:
            batch_size = min(max(limit - len(found), 20), MAX_PAGE)
            if backwards:
                rows = await self.store.room_events(room_id, lower=bound, upper=cursor, backwards=True, limit=batch_size)
            else:
                rows = await self.store.room_events(room_id, lower=cursor, upper=bound, backwards=False, limit=batch_size)
            if not rows:
                return found, None
            scanned_budget -= len(rows)
            for row in rows:
                cursor = row.key if backwards else position_after(row.key)
                if (event_filter.allows(row.event) and (history is None or is_visible(row, user_id, history))
                        and (row.event.sender not in ignored or row.event.is_state)):
                    found.append(row)
                    if len(found) == limit:
                        break
            if len(rows) < batch_size and len(found) < limit:
                return found, None
        return found, cursor

    async def messages(self, requester: Requester, room_id: str, *, from_token: str | None, to_token: str | None,
                       direction: str, limit: int, event_filter: EventFilter, everything: bool = False) -> dict[str, Any]:
        """A page of /messages; `everything` (server admins) ignores history visibility."""
        history = None if everything else await self.reader_history(room_id, requester.user_id)
        backwards = direction == "b"
        start = await self.position_of(room_id, from_token) if from_token else None
        bound = await self.position_of(room_id, to_token) if to_token else None
        if start is None and backwards:  # from the newest end of the room
            head = await self.rooms.head(room_id)
            start_token = room_token(position_after((head.depth, self.rooms.positions.current)))
        else:
            start_token = from_token or room_token((0, 0))
        limit = min(event_filter.limit or limit, MAX_PAGE)
        ignored = await self._ignored(requester.user_id)
        rows, end = await self._page(room_id, requester.user_id, history, start=start, bound=bound,
                                     backwards=backwards, limit=limit, event_filter=event_filter, ignored=ignored)
        if backwards and end is None and bound is None and self.backfill is not None:
            # The start of what this server holds: ask another server for older history.
            if await self.backfill(room_id):
                rows, end = await self._page(room_id, requester.user_id, history, start=start, bound=bound,
                                             backwards=True, limit=limit, event_filter=event_filter, ignored=ignored)
        response: dict[str, Any] = {
            "chunk": await self.serialize(rows, requester),
            "start": start_token,
        }
        if end is not None:
            response["end"] = room_token(end)
        if event_filter.lazy_load_members and rows:
            response["state"] = await self._member_state(rows, requester)
        return response

    async def _member_state(self, rows: list[EventRow], requester: Requester) -> list[dict]:
        """The member events of the page's senders, for lazy-loading clients."""
        earliest = min(rows, key=lambda row: row.key)
        state = await self.state_at(earliest)
        senders = {row.event.sender for row in rows}
        member_ids = [state[(MEMBER, sender)] for sender in senders if (MEMBER, sender) in state]
        member_rows = await self.store.get_event_rows(member_ids)
        return await self.serialize(list(member_rows.values()), requester)

    async def state_at_start(self, row: EventRow) -> dict[StateKey, str]:
        """The room state just before an event."""
        return await self.rooms.state_group_ids(row.state_group_before)

    async def state_at(self, row: EventRow) -> dict[StateKey, str]:
        """The room state just before an event (plus the event itself, if it is state)."""
        state = await self.state_at_start(row)
        if row.event.is_state:
            state = {**state, (row.event.type, row.event.state_key): row.event.event_id}
        return state

    async def context(self, requester: Requester, room_id: str, event_id: str, *, limit: int,
                      event_filter: EventFilter) -> dict[str, Any]:
        history = await self.reader_history(room_id, requester.user_id)
        row = (await self.store.get_event_rows([event_id])).get(event_id)
        ignored = await self._ignored(requester.user_id)
        if (row is None or row.event.room_id != room_id or not is_visible(row, requester.user_id, history)
                or (row.event.sender in ignored and not row.event.is_state)):
            raise MatrixError("M_NOT_FOUND", "Event not found")
        limit = min(event_filter.limit or limit, MAX_PAGE)
        before_count, after_count = limit // 2, limit - limit // 2
        before, before_end = await self._page(room_id, requester.user_id, history, start=row.key, bound=None,
                                              backwards=True, limit=before_count, event_filter=event_filter,
                                              ignored=ignored)
        after, after_end = await self._page(room_id, requester.user_id, history, start=position_after(row.key),
                                            bound=None, backwards=False, limit=after_count, event_filter=event_filter,
                                            ignored=ignored)
        last = after[-1].key if after else row.key
        state_ids = await self.state_at(after[-1] if after else row)
        if event_filter.lazy_load_members:
            senders = {r.event.sender for r in [row, *before, *after]}
            state_ids = {key: eid for key, eid in state_ids.items() if key[0] != MEMBER or key[1] in senders}
        state_rows = await self.store.get_event_rows(state_ids.values())
        return {
            "event": (await self.serialize([row], requester))[0],
            "events_before": await self.serialize(before, requester),
            "events_after": await self.serialize(after, requester),
            "start": room_token(before[-1].key if before else row.key),
            "end": room_token(position_after(last)),
            "state": await self.serialize(list(state_rows.values()), requester),
        }

    # -- state ---------------------------------------------------------------------------

    async def _visible_state_ids(self, requester: Requester, room_id: str) -> dict[StateKey, str]:
        """Current state for members; for those who left, the state when they left."""
        await self.reader_history(room_id, requester.user_id)  # M_FORBIDDEN for strangers
        membership = await self.store.membership_of(room_id, requester.user_id)
        if membership is None or membership[0] == "join":  # a member, or a peek at a world-readable room
            return {k: e.event_id for k, e in (await self.rooms.head(room_id)).state.items()}
        if membership[0] in ("invite", "knock"):
            raise MatrixError("M_FORBIDDEN", "Join the room to see its state")
        leave_event_id = await self.store.membership_event_id(room_id, requester.user_id)
        row = (await self.store.get_event_rows([leave_event_id]))[leave_event_id]
        return await self.state_at(row)

    async def state(self, requester: Requester, room_id: str) -> list[dict[str, Any]]:
        state_ids = await self._visible_state_ids(requester, room_id)
        rows = await self.store.get_event_rows(state_ids.values())
        return await self.serialize(list(rows.values()), requester)

    async def state_event(self, requester: Requester, room_id: str, event_type: str, state_key: str) -> dict[str, Any]:
        state_ids = await self._visible_state_ids(requester, room_id)
        event_id = state_ids.get((event_type, state_key))
        if event_id is None:
            raise MatrixError("M_NOT_FOUND", "No such state event")
        row = (await self.store.get_event_rows([event_id]))[event_id]
        return (await self.serialize([row], requester))[0]

    async def members(self, requester: Requester, room_id: str, *, at: str | None, membership: str | None,
                      not_membership: str | None) -> list[dict[str, Any]]:
        if at is not None:
            await self.reader_history(room_id, requester.user_id)
            position = await self.position_of(room_id, at)
            rows = await self.store.room_events(room_id, lower=None, upper=position, backwards=True, limit=1)
            state_ids = await self.state_at(rows[0]) if rows else {}
        else:
            state_ids = await self._visible_state_ids(requester, room_id)
        member_ids = [eid for (event_type, _), eid in state_ids.items() if event_type == MEMBER]
        rows = await self.store.get_event_rows(member_ids)
        chosen = [row for row in rows.values()
                  if (membership is None or row.event.membership == membership)
                  and (not_membership is None or row.event.membership != not_membership)]
        return await self.serialize(chosen, requester)

    async def joined_members(self, requester: Requester, room_id: str) -> dict[str, Any]:
        membership = await self.store.membership_of(room_id, requester.user_id)
        if membership is None or membership[0] != "join":
            raise MatrixError("M_FORBIDDEN", "You are not joined to this room")
        head = await self.rooms.head(room_id)
        joined = {}
        for (event_type, state_key), event in head.state.items():
            if event_type == MEMBER and event.membership == "join":
                profile = {"display_name": event.content.get("displayname"), "avatar_url": event.content.get("avatar_url")}
                # The spec's RoomMember has string fields: one the member event lacks (or
                # holds as something else) is left out, not null.
                joined[state_key] = {key: value for key, value in profile.items() if isinstance(value, str)}
        return {"joined": joined}
