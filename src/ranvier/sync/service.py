"""/sync: the initial snapshot and the incremental changes since a token, long-polled.

An incremental sync looks only at what moved since its token: rooms whose newest event is
newer (an in-memory map), the user's membership changes, and the other streams' changes
in (since, now]. Quiet rooms cost a dictionary lookup each.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from ranvier.events.model import MEMBER
from ranvier.requester import Requester
from ranvier.rooms.service import RoomHead, RoomServer
from ranvier.rooms.store import EventRow, StateKey
from ranvier.rooms.sync_queries import SyncQueries
from ranvier.rooms.visibility import is_visible
from ranvier.sync.filters import SyncFilter, filter_json
from ranvier.sync.room_members import LAZY_CONNECTIONS, RoomMembers
from ranvier.sync.room_sections import PendingRoom, Prefetched, RoomDelta, TimelineSlice
from ranvier.sync.store import FilterStore
from ranvier.sync.stream_sections import StreamSections, _Window
from ranvier.notify.notifier import Notifier
from ranvier.sync.timeline import Timeline
from ranvier.rooms.tokens import position_after, room_token
from ranvier.notify.tokens import SyncToken

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMEOUT_MS = 5 * 60 * 1000
_FILTERS_PARSED = 10_000
#: How many events a filtered timeline may scan per event it returns.
_SCAN_FACTOR = 10


class SyncService(StreamSections, RoomMembers):
    def __init__(self, rooms: RoomServer, timeline: Timeline, notifier: Notifier, filters: FilterStore,
                 streams: Any) -> None:
        self.rooms = rooms
        self.timeline = timeline
        self.notifier = notifier
        self.filters = filters
        self.queries = SyncQueries(rooms.store)
        #: The homeserver, for the optional streams other services own (account data,
        #: receipts, typing, presence, push counts); absent ones stay empty.
        self.streams = streams
        self._lazy_sent: OrderedDict[tuple[str, str], dict[str, dict[str, str]]] = OrderedDict()
        self._ignored: OrderedDict[str, tuple[int, set[str]]] = OrderedDict()
        self._parsed_filters: OrderedDict[str | tuple[str, str], SyncFilter] = OrderedDict()
        #: The room deltas computed for the syncs answering at `_deltas_at` (the events
        #: position), each shared by the syncs that wait on the same room from the same
        #: position with the same timeline filter: one computation per wake-up, not one per
        #: long-poller. A None result means "compute your own" (its computation failed).
        self._deltas: dict[tuple, asyncio.Future] = {}
        self._deltas_at = 0
        self._current: tuple[tuple[int, ...], SyncToken] = ((), SyncToken())

    def current_token(self) -> SyncToken:
        """The token of now; the same object while no stream moves, so the syncs woken
        together share it (and its encoding)."""
        def position(name: str) -> int:
            stream = self._stream(name)
            return stream.position if stream is not None else 0

        positions = (self.rooms.positions.current, position("account_data"), position("receipts"),
                     position("typing"), position("presence"), position("to_device"), position("device_lists"))
        if positions != self._current[0]:
            self._current = (positions, SyncToken(*positions))
        return self._current[1]

    async def resolve_filter(self, user_id: str, raw: str | None) -> SyncFilter:
        """The `filter` parameter: inline JSON or the ID of a stored filter (a stored filter
        never changes). A long-poller sends the same one each time: the parsed filters are
        kept, by the parameter as sent (and the user, for an ID)."""
        if raw is None:
            return SyncFilter()
        key = raw if raw.startswith("{") else (user_id, raw)
        parsed = self._parsed_filters.get(key)
        if parsed is not None:
            self._parsed_filters.move_to_end(key)
            return parsed
        if raw.startswith("{"):
            parsed = SyncFilter.parse(filter_json(raw))
        else:
            parsed = SyncFilter.parse(await self.filters.get(user_id, raw))
        self._parsed_filters[key] = parsed
        if len(self._parsed_filters) > _FILTERS_PARSED:
            self._parsed_filters.popitem(last=False)
        return parsed

    # -- the long poll -----------------------------------------------------------------------

    async def sync(self, requester: Requester, *, since: str | None, timeout_ms: int, full_state: bool,
                   sync_filter: SyncFilter, set_presence: str | None = None,
                   room_ids_in_events: bool = False) -> dict[str, Any]:
        """The /sync answer for `requester`, long-polled up to `timeout_ms` when incremental.
        Its room events are in /sync's form, already encoded (`encoded_sync_event`); with
        `room_ids_in_events` they are ClientEvent dicts instead (for the older /initialSync)."""
        since_token = SyncToken.parse(since) if since else None
        to_device = self._stream("to_device")
        if to_device is not None and since_token is not None:
            await to_device.confirm(requester.user_id, requester.device_id, since_token.to_device)
        presence = self._stream("presence")
        if presence is not None and set_presence is not None:
            await presence.set_from_sync(requester.user_id, set_presence)
        deadline = time.monotonic() + min(timeout_ms, MAX_TIMEOUT_MS) / 1000
        while True:
            memberships = dict(await self.rooms.user_memberships(requester.user_id))
            if since_token is None or full_state:  # answered at once: nothing to wait for
                return await self._compute(requester, since_token, self.current_token(), sync_filter, full_state,
                                           memberships, room_ids_in_events)
            # Most long polls come back to news (a fan-out's all do): those are answered
            # without subscribing; the others subscribe, then look again if anything moved.
            now = self.current_token()
            response = None
            if now != since_token:
                response = await self._compute(requester, since_token, now, sync_filter, full_state, memberships,
                                               room_ids_in_events)
                if _has_news(response):
                    return response
            keys = [f"user:{requester.user_id}"] + [f"room:{room_id}" for room_id, (m, _) in memberships.items()
                                                      if m in ("join", "invite", "knock")]
            with self.notifier.subscribe(keys) as subscription:
                if self.current_token() != now:  # the user's rooms may have changed too
                    now = self.current_token()
                    memberships = dict(await self.rooms.user_memberships(requester.user_id))
                    response = await self._compute(requester, since_token, now, sync_filter, full_state, memberships,
                                                   room_ids_in_events)
                    if _has_news(response):
                        return response
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await subscription.wait(remaining) or self.notifier.closed:
                    if response is None:
                        response = _response(now, encryption=await self._key_counts(requester))
                    return response

    # -- computing a response ----------------------------------------------------------------

    async def _compute(self, requester: Requester, since: SyncToken | None, now: SyncToken, sync_filter: SyncFilter,
                       full_state: bool, memberships: dict[str, tuple[str, int]],
                       room_ids_in_events: bool = False) -> dict[str, Any]:
        account_data = self._stream("account_data")
        ignored = await self._ignored_users(requester.user_id, now.account_data)
        window = _Window(requester, since, now, sync_filter, full_state, ignored, room_ids_in_events)
        if since is None:
            self._lazy_sent.pop((requester.user_id, requester.device_id), None)

        global_data, room_data = [], {}
        if account_data is not None and (since is None or since.account_data < now.account_data):
            global_data, room_data = await account_data.changes(requester.user_id, since.account_data if since else 0,
                                                                now.account_data)

        memberships_now = await self._memberships_at(requester.user_id, memberships, now.events)
        changed_membership: dict[str, str] = {}
        if since is not None:
            changed_membership = {room_id: membership for room_id, (membership, stream) in memberships_now.items()
                                  if since.events < stream}

        joined = [room for room, (m, _) in memberships_now.items() if m == "join"
                  and sync_filter.room.allows_room(room)]
        ephemeral = await self._ephemeral(window, joined)

        rooms: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "leave": {}, "knock": {}}
        shown_since: dict[str, int | None] = {}  # joined rooms shown, and where each one's window starts
        for room_id, (membership, stream) in memberships_now.items():
            if not sync_filter.room.allows_room(room_id):
                continue
            newly = since is None or room_id in changed_membership
            if membership == "join":
                has_events = since is None or self.rooms.room_streams.get(room_id, 0) > since.events
                if newly or has_events or full_state or room_id in ephemeral or room_id in room_data:
                    shown_since[room_id] = None if since is None or (
                        newly and changed_membership.get(room_id) == "join"
                        and not await self._was_joined(window, room_id)) else since.events
            elif membership == "invite" and newly:
                if await self._inviter(room_id, requester.user_id) not in ignored:  # the spec: never show those
                    rooms["invite"][room_id] = {"invite_state": {"events": await self.rooms.stripped_state_of_membership(room_id, requester.user_id)}}
            elif membership == "knock" and newly:
                rooms["knock"][room_id] = {"knock_state": {"events": await self.rooms.stripped_state_of_membership(room_id, requester.user_id)}}
            elif membership in ("leave", "ban") and (
                    (since is not None and room_id in changed_membership) or (since is None and sync_filter.room.include_leave)
                    or (full_state and sync_filter.room.include_leave)):
                rooms["leave"][room_id] = await self._left_room(window, room_id, stream)
        whole = [room_id for room_id, joined_since in shown_since.items() if joined_since is None or full_state]
        if since is not None and whole and account_data is not None:
            # A room joined in this window (or all, for full_state) brings all its account
            # data: tags written before the join (a room upgrade's, a client's) come with it.
            room_data = {**room_data, **await account_data.of_rooms(requester.user_id, whole, now.account_data)}
        prefetched = await self._prefetch(window, shown_since)
        pending = {room_id: await self._joined_room(window, room_id, joined_since, ephemeral.get(room_id, []),
                                                    room_data.get(room_id, []), prefetched)
                   for room_id, joined_since in shown_since.items()}
        rooms["join"] = await self._finish_joined_rooms(window, pending)
        await self._add_counts(window, rooms["join"])
        all_joined = [room for room, (m, _) in memberships_now.items() if m == "join"]
        encryption, next_token = await self._encryption(window, all_joined, changed_membership)

        return _response(next_token, rooms, await self._presence(window),
                         [e for e in global_data if sync_filter.account_data.allows_type(e["type"])], encryption)

    async def _memberships_at(self, user_id: str, memberships: dict[str, tuple[str, int]],
                              upto: int) -> dict[str, tuple[str, int]]:
        """Each room's membership as of stream position `upto` (a change after it is not seen yet)."""
        late = [room_id for room_id, (_, stream) in memberships.items() if stream > upto]
        result = {room_id: value for room_id, value in memberships.items() if value[1] <= upto}
        if late:
            for room_id, history in (await self.queries.membership_histories(user_id, late)).items():
                earlier = [(stream, m) for stream, m in history if stream <= upto]
                if earlier:
                    result[room_id] = (earlier[-1][1], earlier[-1][0])
        return result

    async def _ignored_users(self, user_id: str, account_data_position: int) -> set[str]:
        """m.ignored_user_list, re-read only when the account data stream has moved."""
        account_data = self._stream("account_data")
        if account_data is None:
            return set()
        cached = self._ignored.get(user_id)
        if cached is not None and cached[0] == account_data_position:
            return cached[1]
        ignored = await account_data.ignored_users(user_id)
        self._ignored[user_id] = (account_data_position, ignored)
        if len(self._ignored) > LAZY_CONNECTIONS:
            self._ignored.popitem(last=False)
        return ignored

    async def _was_joined(self, window: _Window, room_id: str) -> bool:
        """Whether the user was already joined at the since token (a re-join or profile change)."""
        history = (await self.queries.membership_histories(window.user_id, [room_id]))[room_id]
        before = [m for stream, m in history if stream <= window.since.events]
        return bool(before) and before[-1] == "join"

    # -- one room ----------------------------------------------------------------------------

    async def _timeline_rows(self, window: _Window, room_id: str, since_events: int | None, upto: int,
                             limit: int, prefetched: Prefetched | None = None, *, shared: bool = False) -> TimelineSlice:
        """The newest `limit` events of (since, upto] that the timeline filter lets through
        and the user may see. When some are left out it scans further back, up to
        `_SCAN_FACTOR` times the limit, so the limit counts the events returned. The first
        batch, and the user's membership history, may come `prefetched`. A `shared` slice
        does not look at the user's history: it is right for every reader joined before its
        `oldest_scanned` (for whom the history would not be consulted either)."""
        timeline_filter = window.sync_filter.room.timeline
        allows_all = timeline_filter.is_everything
        ignored = window.ignored
        memberships = prefetched.memberships if prefetched is not None else \
            await self.rooms.user_memberships(window.user_id)
        membership = memberships.get(room_id)
        # From their current join on, a member sees everything: only earlier events are checked.
        checked_below = membership[1] if membership is not None and membership[0] == "join" else upto + 1
        history = None
        found: list[EventRow] = []
        hidden_state: list[EventRow] = []
        budget = max(limit, 1) * _SCAN_FACTOR
        batch = limit + 1
        cursor = upto
        oldest = None
        while True:
            if prefetched is not None and cursor == upto and room_id in prefetched.recent:
                rows = prefetched.recent[room_id]
            else:
                rows = await self.queries.recent_events(room_id, since=since_events or 0, upto=cursor, limit=batch)
            if rows:
                oldest = rows[0].stream_ordering
            if rows and history is None and not shared and _joined_after(memberships, room_id, rows[0]):
                history = prefetched.histories.get(room_id) if prefetched is not None else None
                if history is None:
                    history = (await self.queries.membership_histories(window.user_id, [room_id]))[room_id]
            for row in reversed(rows):
                if history is not None and row.stream_ordering < checked_below \
                        and not is_visible(row, window.user_id, history):
                    continue
                if ignored and row.event.sender in ignored and not row.event.is_state:
                    continue
                if not allows_all and not timeline_filter.allows(row.event):
                    if row.event.is_state:
                        hidden_state.append(row)
                    continue
                if len(found) == limit:
                    return TimelineSlice(found[::-1], True, found[-1].stream_ordering if found else row.stream_ordering + 1,
                                  hidden_state, oldest)
                found.append(row)
            budget -= len(rows)
            if len(rows) < batch:  # the whole window has been looked at
                return TimelineSlice(found[::-1], False, None, hidden_state, oldest)
            if budget <= 0:
                return TimelineSlice(found[::-1], True, found[-1].stream_ordering if found else rows[0].stream_ordering,
                              hidden_state, oldest)
            cursor = rows[0].stream_ordering - 1
            batch = min(max(limit + 1 - len(found), 20), budget)

    async def _state_for(self, room_id: str, since_events: int | None, upto: int, timeline: TimelineSlice,
                         full: bool, head: RoomHead | None = None,
                         prefetched: Prefetched | None = None) -> dict[StateKey, str]:
        """The state section: the whole state at the start of the timeline when `full`,
        else what changed in the gap before it; with, either way, the state events the
        timeline filter left out of the timeline. With the room's `head`, a timeline
        that starts after the last state change takes the state from it, not from its
        state group."""
        rows = timeline.rows
        if full and head is not None and rows and rows[0].state_group_before == head.state_group:
            state_ids = {key: event.event_id for key, event in head.state.items()}
            later = rows[0].stream_ordering
        elif full and prefetched is not None and rows and rows[0].state_group_before in prefetched.state_groups:
            state_ids = dict(prefetched.state_groups[rows[0].state_group_before])
            later = rows[0].stream_ordering
        elif full:
            state_ids = await self._state_before(room_id, rows, upto)
            later = rows[0].stream_ordering if rows else upto
        else:
            state_ids = {}
            if timeline.gap_before is not None:
                state_ids = await self.queries.state_changes(room_id, since=since_events or 0,
                                                             before=timeline.gap_before)
            later = timeline.gap_before if timeline.gap_before is not None else 0
        for row in reversed(timeline.hidden_state):
            if row.stream_ordering >= later:
                state_ids[(row.event.type, row.event.state_key)] = row.event.event_id
        return state_ids

    async def _prefetch(self, window: _Window, shown_since: dict[str, int | None]) -> Prefetched | None:
        """For a sync that shows several rooms (an initial sync above all, just after a
        restart): their heads, the first batch of each timeline, the user's membership
        histories and the state groups full sections start from, in a few queries for all
        of them instead of several per room. The timelines come first: a head not in
        memory takes the events they hold rather than reading and parsing them again."""
        if len(shown_since) < 2:
            return None
        cached = self.rooms.cached_heads(list(shown_since))
        limit = _timeline_limit(window)
        recent = await self.queries.recent_events_of_rooms(
            [(room_id, since or 0, window.now.events, limit + 1) for room_id, since in shown_since.items()],
            {room_id: head.state for room_id, head in cached.items()})
        heads = cached
        if len(cached) < len(shown_since):  # the others' state and latest events may be in their timelines
            heads = await self.rooms.heads(list(shown_since), known={
                row.event.event_id: row.event for room_id, rows in recent.items() if room_id not in cached
                for row in rows})
        memberships = await self.rooms.user_memberships(window.user_id)
        before_join = [room_id for room_id, rows in recent.items() if rows and _joined_after(memberships, room_id, rows[0])]
        histories = await self.queries.membership_histories(window.user_id, before_join) if before_join else {}
        starts = {rows[max(len(rows) - limit, 0)].state_group_before: room_id for room_id, rows in recent.items()
                  if rows and limit and (shown_since[room_id] is None or window.full_state) and room_id in heads}
        starts = [group for group, room_id in starts.items() if group and group != heads[room_id].state_group]
        state_groups = await self.rooms.states.ids_of_groups(starts) if starts else {}
        return Prefetched(heads, recent, histories, memberships, state_groups)

    async def _joined_room(self, window: _Window, room_id: str, since_events: int | None,
                           ephemeral: list[dict[str, Any]], account_data: list[dict[str, Any]],
                           prefetched: Prefetched | None) -> PendingRoom:
        full = since_events is None or window.full_state
        # Taken from the prefetch when there is one: with more rooms than the heads cache
        # holds, asking again would load each evicted head alone.
        head = prefetched.heads.get(room_id) if prefetched is not None else None
        head = head or await self.rooms.head(room_id)
        delta = None if full or window.room_ids_in_events or since_events != window.since.events \
            else await self._shared_delta(window, room_id)
        if delta is not None:
            timeline, state_ids, events = delta.timeline, delta.state_ids, delta.events
            if events is not None and (window.user_id, window.requester.device_id) in delta.sending_devices:
                events = None  # the sending device's own copy carries its transaction IDs
        else:
            timeline = await self._timeline_rows(window, room_id, since_events, window.now.events,
                                                 _timeline_limit(window), prefetched)
            state_ids = await self._state_for(room_id, since_events, window.now.events, timeline, full, head,
                                              prefetched)
            events = None
        rows = timeline.rows
        if rows:
            prev_batch = room_token(rows[0].key)
        else:
            prev_batch = room_token(position_after((head.depth, window.now.events)))

        members_changed = delta.members_changed if delta is not None else full or any(
            row.event.type == MEMBER for row in rows) or any(key[0] == MEMBER for key in state_ids)
        state_ids = await self._lazy_members(window, head, state_ids, rows, full)
        section: dict[str, Any] = {
            "timeline": {"limited": timeline.limited, "prev_batch": prev_batch},
            "state": {},
            "ephemeral": {"events": ephemeral},
            "account_data": {"events": [e for e in account_data
                                        if window.sync_filter.room.account_data.allows_type(e["type"])]
                                        if account_data else []},
        }
        if members_changed:
            section["summary"] = self._summary(head, window.user_id)
        return PendingRoom(section, rows, state_ids, head.state, events)

    async def _shared_delta(self, window: _Window, room_id: str) -> RoomDelta | None:
        """The room's delta for an incremental sync, computed by the first sync that asks
        for it at this position and shared with the others that wait on the same key; None
        when this reader's view may differ (they joined after an event it looked at)."""
        now = window.now.events
        if now != self._deltas_at:
            if now < self._deltas_at:
                return None  # a sync behind the latest wake-up: rare, it computes its own
            self._deltas = {}
            self._deltas_at = now
        key = (room_id, window.since.events, window.sync_filter.room.timeline, window.sync_filter.event_fields,
               window.sync_filter.event_format, frozenset(window.ignored))
        future = self._deltas.get(key)
        if future is None:
            future = self._deltas[key] = asyncio.get_running_loop().create_future()
            try:
                delta = await self._room_delta(window, room_id)
            except BaseException:
                future.set_result(None)
                if self._deltas.get(key) is future:
                    del self._deltas[key]
                raise
            future.set_result(delta)
        delta = future.result() if future.done() else await asyncio.shield(future)
        if delta is None:
            return None
        membership = (await self.rooms.user_memberships(window.user_id)).get(room_id)
        oldest = delta.timeline.oldest_scanned
        if oldest is not None and (membership is None or membership[0] != "join" or oldest < membership[1]):
            return None
        return delta

    async def _room_delta(self, window: _Window, room_id: str) -> RoomDelta:
        """The part of a joined room's incremental section that does not depend on the
        reader (see `RoomDelta`)."""
        timeline = await self._timeline_rows(window, room_id, window.since.events, window.now.events,
                                             _timeline_limit(window), shared=True)
        state_ids = await self._state_for(room_id, window.since.events, window.now.events, timeline, False)
        events = await self.timeline.serialize_for_everyone(timeline.rows, event_filter_fields=_event_fields(window),
                                                            as_client=window.sync_filter.event_format == "client")
        sending_devices = frozenset((row.event.sender, row.txn_device) for row in timeline.rows)
        members_changed = any(row.event.type == MEMBER for row in timeline.rows) or any(
            key[0] == MEMBER for key in state_ids)
        return RoomDelta(timeline, state_ids, events, sending_devices, members_changed)

    async def _finish_joined_rooms(self, window: _Window, pending: dict[str, PendingRoom]) -> dict[str, dict[str, Any]]:
        """Fill in the events of every joined room's section: the state events of all rooms
        looked up together, and all timelines, then all states, serialised in one call
        each (a call reads what it bundles, such as relations, with one query). The state
        events fill the event cache only if they are a small part of it (a sync of many
        rooms would evict it all); those of the rooms' current state are not parsed again."""
        known = {event_id: event for room in pending.values() for key, event_id in room.state_ids.items()
                 if (event := room.current.get(key)) is not None and event.event_id == event_id}
        state_ids = [event_id for room in pending.values() for event_id in room.state_ids.values()]
        state_rows = await self.rooms.store.get_event_rows(
            state_ids, cache=self.rooms.store.worth_caching(len(state_ids)), known=known)
        state_filter = window.sync_filter.room.state
        states = {room_id: [state_rows[event_id] for event_id in room.state_ids.values()
                            if event_id in state_rows and state_filter.allows(state_rows[event_id].event)]
                  for room_id, room in pending.items()}
        unserialised = [room for room in pending.values() if room.timeline_events is None]
        timelines = _split(await self._serialize(window, [row for room in unserialised for row in room.timeline_rows]),
                           [len(room.timeline_rows) for room in unserialised])
        for room, timeline in zip(unserialised, timelines):
            room.timeline_events = timeline
        state_events = _split(await self._serialize(window, [row for rows in states.values() for row in rows]),
                              [len(rows) for rows in states.values()])
        sections = {}
        for (room_id, room), state in zip(pending.items(), state_events):
            room.section["timeline"]["events"] = room.timeline_events
            room.section["state"]["events"] = state
            sections[room_id] = room.section
        return sections

    async def _left_room(self, window: _Window, room_id: str, leave_stream: int) -> dict[str, Any]:
        """A room the user left (or was kicked or banned from): its events up to and with
        the leave, and its state then (all of it in a full sync)."""
        since_events = window.since.events if window.since else None
        timeline = await self._timeline_rows(window, room_id, since_events, leave_stream, _timeline_limit(window))
        rows = timeline.rows
        full = since_events is None or window.full_state
        state_ids = await self._state_for(room_id, since_events, leave_stream, timeline, full)
        state_rows = await self.rooms.store.get_event_rows(state_ids.values())
        state_filter = window.sync_filter.room.state
        return {
            "timeline": {"events": await self._serialize(window, rows), "limited": timeline.limited,
                         "prev_batch": room_token(rows[0].key) if rows else room_token((0, 0))},
            "state": {"events": await self._serialize(window, [row for row in state_rows.values()
                                                                if state_filter.allows(row.event)])},
            "account_data": {"events": []},
        }

    async def _state_before(self, room_id: str, rows: list[EventRow], upto: int) -> dict[StateKey, str]:
        """The room state at the start of the timeline (or at `upto` when it is empty)."""
        if rows:
            return dict(await self.timeline.state_at_start(rows[0]))  # a copy: the caller adds to it
        latest = await self.queries.recent_events(room_id, since=0, upto=upto, limit=1)
        if not latest:
            return {}
        return dict(await self.timeline.state_at(latest[0]))

    async def _inviter(self, room_id: str, user_id: str) -> str | None:
        invite = await self.rooms.membership_event(room_id, user_id)
        return invite.sender if invite is not None else None

    async def _serialize(self, window: _Window, rows: list[EventRow]) -> list[Any]:
        return await self.timeline.serialize(rows, window.requester, event_filter_fields=_event_fields(window),
                                             as_client=window.sync_filter.event_format == "client",
                                             for_sync=not window.room_ids_in_events)


def _event_fields(window: _Window) -> list[str] | None:
    fields = window.sync_filter.event_fields
    return list(fields) if fields is not None else None


def _joined_after(memberships: dict[str, tuple[str, int]], room_id: str, row: EventRow) -> bool:
    """Whether `row` may predate the user's current join (so history visibility decides)."""
    membership = memberships.get(room_id)
    return membership is None or membership[0] != "join" or row.stream_ordering < membership[1]


def _timeline_limit(window: _Window) -> int:
    limit = window.sync_filter.room.timeline.limit
    return DEFAULT_TIMELINE_LIMIT if limit is None else limit


def _split(items: list[Any], lengths: list[int]) -> list[list[Any]]:
    """`items` cut into consecutive parts of these lengths."""
    parts, start = [], 0
    for length in lengths:
        parts.append(items[start:start + length])
        start += length
    return parts


def _has_news(response: dict[str, Any]) -> bool:
    return (any(response["rooms"][kind] for kind in response["rooms"]) or bool(response["presence"]["events"])
            or bool(response["account_data"]["events"]) or bool(response["to_device"]["events"])
            or bool(response["device_lists"]["changed"]) or bool(response["device_lists"]["left"]))


def _response(now: SyncToken, rooms: dict[str, dict[str, Any]] | None = None, presence: list | None = None,
              account_data: list | None = None, encryption: dict[str, Any] | None = None) -> dict[str, Any]:
    """The /sync body; `encryption` holds the device's to-device messages, device-list
    changes and key counts."""
    return {
        "next_batch": now.encode(),
        "rooms": rooms or {"join": {}, "invite": {}, "leave": {}, "knock": {}},
        "presence": {"events": presence or []},
        "account_data": {"events": account_data or []},
        "to_device": {"events": []},
        "device_lists": {"changed": [], "left": []},
        "device_one_time_keys_count": {},
        "device_unused_fallback_key_types": [],
        **(encryption or {}),
    }

