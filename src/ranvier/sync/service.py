"""/sync: the initial snapshot and the incremental changes since a token, long-polled.

An incremental sync looks only at what moved since its token: rooms whose newest event is
newer (an in-memory map), the user's membership changes, and the other streams' changes
in (since, now]. Quiet rooms cost a dictionary lookup each.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import orjson

from ranvier.errors import MatrixError
from ranvier.events.model import MEMBER
from ranvier.requester import Requester
from ranvier.rooms.service import RoomServer
from ranvier.rooms.store import EventRow, StateKey, SyncQueries
from ranvier.rooms.visibility import is_visible
from ranvier.sync.filters import SyncFilter
from ranvier.sync.store import FilterStore
from ranvier.sync.notifier import Notifier
from ranvier.sync.timeline import Timeline
from ranvier.sync.tokens import SyncToken, position_after, room_token

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMEOUT_MS = 5 * 60 * 1000
STRIPPED_STATE_TYPES = (
    "m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias",
    "m.room.encryption", "m.room.topic",
)
_LAZY_CONNECTIONS = 10_000


@dataclass
class _Window:
    """One sync's view: who, from where (None = initial), up to where, with which filter."""

    requester: Requester
    since: SyncToken | None
    now: SyncToken
    sync_filter: SyncFilter
    full_state: bool
    ignored: set[str]

    @property
    def user_id(self) -> str:
        return self.requester.user_id


class SyncService:
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
        self._lazy_sent: OrderedDict[tuple[str, str], dict[str, set[str]]] = OrderedDict()
        self._ignored: OrderedDict[str, tuple[int, set[str]]] = OrderedDict()

    def _stream(self, name: str):
        return getattr(self.streams, name, None)

    def current_token(self) -> SyncToken:
        def position(name: str) -> int:
            stream = self._stream(name)
            return stream.position if stream is not None else 0

        return SyncToken(
            events=self.rooms.positions.current,
            account_data=position("account_data"),
            receipts=position("receipts"),
            typing=position("typing"),
            presence=position("presence"),
            to_device=position("to_device"),
            device_lists=position("device_lists"),
        )

    async def resolve_filter(self, user_id: str, raw: str | None) -> SyncFilter:
        """The `filter` parameter: inline JSON or the ID of a stored filter."""
        if raw is None:
            return SyncFilter()
        if raw.startswith("{"):
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise MatrixError("M_INVALID_PARAM", "filter is not valid JSON") from None
            return SyncFilter.parse(data)
        return SyncFilter.parse(await self.filters.get(user_id, raw))

    # -- the long poll -----------------------------------------------------------------------

    async def sync(self, requester: Requester, *, since: str | None, timeout_ms: int, full_state: bool,
                   sync_filter: SyncFilter, set_presence: str | None = None) -> dict[str, Any]:
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
            keys = [f"user:{requester.user_id}"] + [f"room:{room_id}" for room_id, (m, _) in memberships.items()
                                                      if m in ("join", "invite", "knock")]
            with self.notifier.subscribe(keys) as subscription:
                now = self.current_token()
                if since_token is not None and now == since_token and not full_state:
                    response = None
                else:
                    response = await self._compute(requester, since_token, now, sync_filter, full_state, memberships)
                    if since_token is None or full_state or _has_news(response):
                        return response
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await subscription.wait(remaining) or self.notifier.closed:
                    if response is None:
                        response = _response(now, encryption=await self._key_counts(requester))
                    return response

    # -- computing a response ----------------------------------------------------------------

    async def _compute(self, requester: Requester, since: SyncToken | None, now: SyncToken, sync_filter: SyncFilter,
                       full_state: bool, memberships: dict[str, tuple[str, int]]) -> dict[str, Any]:
        account_data = self._stream("account_data")
        ignored = await self._ignored_users(requester.user_id, now.account_data)
        window = _Window(requester, since, now, sync_filter, full_state, ignored)
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
        for room_id, (membership, stream) in memberships_now.items():
            if not sync_filter.room.allows_room(room_id):
                continue
            newly = since is None or room_id in changed_membership
            if membership == "join":
                has_events = since is None or self.rooms.room_streams.get(room_id, 0) > since.events
                if newly or has_events or full_state or room_id in ephemeral or room_id in room_data:
                    joined_since = None if since is None or (newly and changed_membership.get(room_id) == "join"
                                                             and not await self._was_joined(window, room_id)) else since.events
                    rooms["join"][room_id] = await self._joined_room(window, room_id, joined_since,
                                                                     ephemeral.get(room_id, []), room_data.get(room_id, []))
            elif membership == "invite" and newly:
                if await self._inviter(room_id, requester.user_id) not in ignored:  # the spec: never show those
                    rooms["invite"][room_id] = {"invite_state": {"events": await self._stripped_state(room_id, requester.user_id)}}
            elif membership == "knock" and newly:
                rooms["knock"][room_id] = {"knock_state": {"events": await self._stripped_state(room_id, requester.user_id)}}
            elif membership in ("leave", "ban") and (
                    (since is not None and room_id in changed_membership) or (since is None and sync_filter.room.include_leave)
                    or (full_state and sync_filter.room.include_leave)):
                rooms["leave"][room_id] = await self._left_room(window, room_id, stream)
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
        if len(self._ignored) > _LAZY_CONNECTIONS:
            self._ignored.popitem(last=False)
        return ignored

    async def _was_joined(self, window: _Window, room_id: str) -> bool:
        """Whether the user was already joined at the since token (a re-join or profile change)."""
        history = (await self.queries.membership_histories(window.user_id, [room_id]))[room_id]
        before = [m for stream, m in history if stream <= window.since.events]
        return bool(before) and before[-1] == "join"

    async def _ephemeral(self, window: _Window, joined: list[str]) -> dict[str, list[dict[str, Any]]]:
        result: dict[str, list[dict[str, Any]]] = {}
        typing = self._stream("typing")
        if typing is not None and (window.since is None or window.since.typing < window.now.typing):
            for room_id, event in typing.events(joined, window.since.typing if window.since else 0).items():
                result.setdefault(room_id, []).append(event)
        receipts = self._stream("receipts")
        if receipts is not None and (window.since is None or window.since.receipts < window.now.receipts):
            since = window.since.receipts if window.since else 0
            for room_id, event in (await receipts.events(window.user_id, joined, since, window.now.receipts)).items():
                result.setdefault(room_id, []).append(event)
        ephemeral_filter = window.sync_filter.room.ephemeral
        return {room: [e for e in events if ephemeral_filter.allows_type(e["type"])] for room, events in result.items()}

    async def _presence(self, window: _Window) -> list[dict[str, Any]]:
        presence = self._stream("presence")
        if presence is None or (window.since is not None and window.since.presence >= window.now.presence):
            return []
        events = await presence.events(window.user_id, window.since.presence if window.since else 0, window.now.presence)
        presence_filter = window.sync_filter.presence
        return [e for e in events if presence_filter.allows_type(e["type"]) and presence_filter.allows_sender(e["sender"])]

    async def _add_counts(self, window: _Window, joined_rooms: dict[str, dict[str, Any]]) -> None:
        """Unread counts per room; per thread too when the filter asks for them, and then the
        room's own counts cover only the main timeline (the spec's threaded notifications)."""
        push = self._stream("push")
        if push is None or not joined_rooms:
            return
        threaded = window.sync_filter.room.timeline.unread_thread_notifications
        counts = await push.counts(window.user_id, list(joined_rooms))
        for room_id, section in joined_rooms.items():
            room_counts = counts.get(room_id, {})
            main = room_counts.get("main", room_counts) if threaded else room_counts
            section["unread_notifications"] = {
                "notification_count": main.get("notification_count", 0),
                "highlight_count": main.get("highlight_count", 0),
            }
            if threaded:
                section["unread_thread_notifications"] = room_counts.get("threads", {})

    async def _encryption(self, window: _Window, joined: list[str],
                          changed_membership: dict[str, str]) -> tuple[dict[str, Any], SyncToken]:
        """The device's to-device messages, device-list changes (incremental syncs only) and
        key counts; and the token to answer with, whose to-device position stops at the
        last message sent when more are waiting."""
        fields = await self._key_counts(window.requester)
        next_token = window.now
        to_device = self._stream("to_device")
        if to_device is not None:
            events, upto = await to_device.messages_for(window.user_id, window.requester.device_id,
                                                        window.since.to_device if window.since else None,
                                                        window.now.to_device)
            fields["to_device"] = {"events": events}
            next_token = replace(next_token, to_device=upto)
        device_lists = self._stream("device_lists")
        if device_lists is not None and window.since is not None:
            fields["device_lists"] = await device_lists.changes(window.user_id, window.since, window.now, joined,
                                                                changed_membership)
        return fields, next_token

    async def _key_counts(self, requester: Requester) -> dict[str, Any]:
        keys = self._stream("keys")
        if keys is None:
            return {}
        counts, fallback = await keys.key_counts(requester.user_id, requester.device_id)
        return {"device_one_time_keys_count": counts, "device_unused_fallback_key_types": fallback}

    # -- one room ----------------------------------------------------------------------------

    async def _timeline_rows(self, window: _Window, room_id: str, since_events: int | None, upto: int,
                             limit: int) -> tuple[list[EventRow], bool]:
        rows = await self.queries.recent_events(room_id, since=since_events or 0, upto=upto, limit=limit + 1)
        limited = len(rows) > limit
        rows = rows[-limit:] if limit else []
        timeline_filter = window.sync_filter.room.timeline
        membership = (await self.rooms.user_memberships(window.user_id)).get(room_id)
        if rows and membership is not None and membership[0] == "join" and membership[1] <= rows[0].stream_ordering:
            history = None  # joined before all of these: every one is visible
        else:
            history = (await self.queries.membership_histories(window.user_id, [room_id]))[room_id]
        visible = [row for row in rows if timeline_filter.allows(row.event)
                   and (history is None or is_visible(row, window.user_id, history))
                   and (row.event.sender not in window.ignored or row.event.is_state)]
        return visible, limited

    async def _joined_room(self, window: _Window, room_id: str, since_events: int | None,
                           ephemeral: list[dict[str, Any]], account_data: list[dict[str, Any]]) -> dict[str, Any]:
        limit = window.sync_filter.room.timeline.limit
        limit = DEFAULT_TIMELINE_LIMIT if limit is None else limit
        rows, limited = await self._timeline_rows(window, room_id, since_events, window.now.events, limit)
        head = await self.rooms.head(room_id)
        if rows:
            prev_batch = room_token(rows[0].key)
        else:
            prev_batch = room_token(position_after((head.last_depth, window.now.events)))

        full = since_events is None or window.full_state
        if full:
            state_ids = await self._state_before(room_id, rows, window.now.events)
        elif limited and rows:
            state_ids = await self.queries.state_changes(room_id, since=since_events, before=rows[0].stream_ordering)
        else:
            state_ids = {}
        state_ids = self._lazy_members(window, room_id, state_ids, rows, full)
        state_rows = await self.rooms.store.get_event_rows(state_ids.values())
        state_filter = window.sync_filter.room.state
        state_rows_list = [row for row in state_rows.values() if state_filter.allows(row.event)]

        section: dict[str, Any] = {
            "timeline": {"events": await self._serialize(window, rows), "limited": limited, "prev_batch": prev_batch},
            "state": {"events": await self._serialize(window, state_rows_list)},
            "ephemeral": {"events": ephemeral},
            "account_data": {"events": [e for e in account_data
                                        if window.sync_filter.room.account_data.allows_type(e["type"])]},
        }
        if full or any(row.event.type == MEMBER for row in [*rows, *state_rows_list]):
            section["summary"] = self._summary(head, window.user_id)
        return section

    async def _left_room(self, window: _Window, room_id: str, leave_stream: int) -> dict[str, Any]:
        limit = window.sync_filter.room.timeline.limit
        limit = DEFAULT_TIMELINE_LIMIT if limit is None else limit
        since_events = window.since.events if window.since else None
        rows, limited = await self._timeline_rows(window, room_id, since_events, leave_stream, limit)
        if since_events is None or window.full_state or not rows:
            state_ids = await self._state_before(room_id, rows, leave_stream) if since_events is None else {}
        elif limited:
            state_ids = await self.queries.state_changes(room_id, since=since_events, before=rows[0].stream_ordering)
        else:
            state_ids = {}
        state_rows = await self.rooms.store.get_event_rows(state_ids.values())
        return {
            "timeline": {"events": await self._serialize(window, rows), "limited": limited,
                         "prev_batch": room_token(rows[0].key) if rows else room_token((0, 0))},
            "state": {"events": await self._serialize(window, list(state_rows.values()))},
            "account_data": {"events": []},
        }

    async def _state_before(self, room_id: str, rows: list[EventRow], upto: int) -> dict[StateKey, str]:
        """The room state at the start of the timeline (or at `upto` when it is empty)."""
        if rows:
            return await self.timeline.state_at_start(rows[0])
        latest = await self.queries.recent_events(room_id, since=0, upto=upto, limit=1)
        if not latest:
            return {}
        return await self.timeline.state_at(latest[0])

    def _lazy_members(self, window: _Window, room_id: str, state_ids: dict[StateKey, str], rows: list[EventRow],
                      full: bool) -> dict[StateKey, str]:
        """With lazy_load_members, send each member event a client needs once per connection."""
        state_filter = window.sync_filter.room.state
        if not state_filter.lazy_load_members:
            return state_ids
        head_state = self.rooms._heads.get(room_id).state if room_id in self.rooms._heads else {}
        needed = {row.event.sender for row in rows}
        if full:
            needed.add(window.user_id)
        connection = (window.user_id, window.requester.device_id)
        sent = self._lazy_sent.setdefault(connection, {})
        self._lazy_sent.move_to_end(connection)
        if len(self._lazy_sent) > _LAZY_CONNECTIONS:
            self._lazy_sent.popitem(last=False)
        already = sent.setdefault(room_id, set())
        if not state_filter.include_redundant_members:
            needed -= already
        result = {key: eid for key, eid in state_ids.items() if key[0] != MEMBER}
        for user_id in needed:
            key = (MEMBER, user_id)
            event_id = state_ids.get(key)
            if event_id is None and key in head_state and not any(r.event.event_id == head_state[key].event_id for r in rows):
                event_id = head_state[key].event_id
            if event_id is not None and not any(r.event.event_id == event_id for r in rows):
                result[key] = event_id
        already.update(needed)
        return result

    def _summary(self, head, user_id: str) -> dict[str, Any]:
        joined = invited = 0
        heroes = []
        for (event_type, state_key), event in head.state.items():
            if event_type != MEMBER:
                continue
            if event.membership == "join":
                joined += 1
            elif event.membership == "invite":
                invited += 1
            else:
                continue
            if state_key != user_id:
                heroes.append(state_key)
        return {"m.heroes": sorted(heroes)[:5], "m.joined_member_count": joined, "m.invited_member_count": invited}

    async def _inviter(self, room_id: str, user_id: str) -> str | None:
        invite = (await self.rooms.head(room_id)).state.get((MEMBER, user_id))
        return invite.sender if invite is not None else None

    async def _stripped_state(self, room_id: str, user_id: str) -> list[dict[str, Any]]:
        """What an invitee or knocker may see of a room: a few state events, content only."""
        head = await self.rooms.head(room_id)
        events = [head.state[(t, "")] for t in STRIPPED_STATE_TYPES if (t, "") in head.state]
        own = head.state.get((MEMBER, user_id))
        if own is not None:
            events.append(own)
        stripped = [{"type": e.type, "state_key": e.state_key, "content": e.content, "sender": e.sender} for e in events]
        return stripped

    async def _serialize(self, window: _Window, rows: list[EventRow]) -> list[dict[str, Any]]:
        fields = list(window.sync_filter.event_fields) if window.sync_filter.event_fields is not None else None
        return await self.timeline.serialize(rows, window.requester, event_filter_fields=fields,
                                             as_client=window.sync_filter.event_format == "client")


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

