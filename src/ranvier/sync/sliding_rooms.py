"""Sliding sync's room results: what a connection's client gets of each room it is shown.

Each room is compared with what the connection sent of it before (`RoomSent`). A room
never sent gets everything, flagged `initial`; a room sent before gets the events since
(`limited` when there were more than `timeline_limit`), the required state it does not
hold yet (state that changed, or that a widened `required_state` now matches), and the
fields whose value changed. A raised `timeline_limit` resends the latest events when the
client lacks some of them (`expanded_timeline`). Rooms the user was never joined to get
their stripped state only.

Everything is read in batches for all the rooms of a response (heads, timelines,
membership histories, event rows, push counts) and serialised in one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ranvier.events.model import MEMBER, Event
from ranvier.requester import Requester
from ranvier.rooms.service import RoomHead
from ranvier.rooms.store import EventRow, StateKey
from ranvier.rooms.visibility import is_visible
from ranvier.sync.service import SyncService
from ranvier.sync.sliding_connections import ConnectionState, RoomSent
from ranvier.sync.sliding_lists import Entry, Marks, RoomFacts
from ranvier.sync.sliding_request import ME, RoomConfig
from ranvier.notify.tokens import SyncToken
from ranvier.rooms.tokens import position_after, room_token

HEROES = 5
#: Heroes are joined members first, then invited ones, then those who left or were banned.
_HERO_ORDER = {"join": 0, "invite": 1}


@dataclass
class RoomRequest:
    """A room the response may include: its list entry, combined config, matching lists."""

    entry: Entry
    config: RoomConfig
    lists: list[str]


@dataclass
class _Work:
    """One room being computed."""

    request: RoomRequest
    sent: RoomSent | None
    upto: int
    initial: bool
    #: is_dm and the unread counts: compared with what was sent without reading anything.
    cheap: dict[str, Any] = field(default_factory=dict)
    #: (since, limit) of the events to read, or None when the timeline has nothing new.
    fetch: tuple[int, int] | None = None
    #: Whether the fetch is of the latest events, to see if the client lacks some of them.
    expansion_check: bool = False
    rows: list[EventRow] = field(default_factory=list)
    #: The events read that are new since the room was last sent (all of them when initial).
    new_rows: list[EventRow] = field(default_factory=list)
    timeline: list[EventRow] = field(default_factory=list)
    limited: bool = False
    expanded: bool = False
    covered_from: int = 0

    @property
    def room_id(self) -> str:
        return self.request.entry.room_id


class RoomResults:
    def __init__(self, sync: SyncService, facts: RoomFacts) -> None:
        self.sync = sync
        self.rooms = sync.rooms
        self.timeline = sync.timeline
        self.queries = sync.queries
        self.facts = facts

    async def compute(self, requester: Requester, requests: Mapping[str, RoomRequest], base: ConnectionState,
                      now: SyncToken, marks: Marks, ignored: set[str]) -> tuple[dict[str, dict], dict[str, RoomSent]]:
        """(room results for the response, the new `RoomSent` of every room looked at)."""
        user_id = requester.user_id
        push = self.sync._stream("push")
        joined = [room_id for room_id, r in requests.items() if r.entry.membership == "join"]
        counts = await push.counts(user_id, joined) if push is not None and joined else {}
        works: list[_Work] = []
        stripped: list[RoomRequest] = []
        for room_id, request in requests.items():
            entry, sent = request.entry, base.rooms.get(room_id)
            if not entry.ever_joined:
                if sent is None or not sent.stripped or sent.membership_stream != entry.membership_stream:
                    stripped.append(request)
                continue
            cheap = {"is_dm": room_id in marks.direct, **_counts(counts, room_id, entry)}
            work = _plan(request, sent, now, self.rooms.room_streams.get(room_id, 0), cheap)
            if work is not None:
                works.append(work)

        heads = await self.rooms.heads([w.room_id for w in works] + [r.entry.room_id for r in stripped])
        await self._read_timelines(works)
        await self._filter_visible(works, user_id, ignored)
        sources, leave_rows = await self._state_sources(works, heads)
        bumps = await self.facts.bump_stamps([w.room_id for w in works if w.request.entry.membership == "join"])
        live_since = base.token.events if base.token is not None else None
        results: dict[str, dict] = {}
        updated: dict[str, RoomSent] = {}
        state_ids: dict[str, dict[StateKey, str]] = {}
        stubs: dict[str, list[StateKey]] = {}
        for work in works:
            room_id, entry = work.room_id, work.request.entry
            held, send, gone = _state_delta(work, sources[room_id], user_id)
            head = heads.get(room_id) if entry.membership == "join" else None
            fields = {"membership": entry.membership,
                      "bump_stamp": bumps.get(room_id, entry.membership_stream) if head else entry.membership_stream,
                      **work.cheap, **self._summary(head, sources[room_id], user_id)}
            changed = _changed_fields(fields, None if work.initial else work.sent.fields)
            updated[room_id] = RoomSent(entry.membership, entry.membership_stream, work.upto, work.covered_from,
                                        work.request.config, held, fields)
            if work.initial or work.timeline or work.limited or send or gone or changed:
                after = (head.depth, work.upto) if head else leave_rows[room_id].key if room_id in leave_rows else None
                results[room_id] = _result(work, changed, live_since, after)
                state_ids[room_id] = {key: event.event_id for key, event in send.items()}
                stubs[room_id] = gone
        await self._serialize(requester, works, results, state_ids, stubs)
        for request in stripped:
            results[request.entry.room_id], updated[request.entry.room_id] = await self._stripped(request, user_id)
        return results, updated

    async def _stripped(self, request: RoomRequest, user_id: str) -> tuple[dict, RoomSent]:
        """An invite, a knock or a declined invite: the stripped state, the membership."""
        entry = request.entry
        stripped_state = await self.rooms.stripped_state_of_membership(entry.room_id, user_id)
        # `invite_state` is the name deployed clients read (the proposal renamed it).
        result = {"initial": True, "membership": entry.membership, "bump_stamp": entry.membership_stream,
                  "stripped_state": stripped_state, "invite_state": stripped_state}
        if request.lists:
            result["lists"] = request.lists
        return result, RoomSent(entry.membership, entry.membership_stream, entry.membership_stream,
                                entry.membership_stream + 1, request.config, {}, {"membership": entry.membership},
                                stripped=True)

    def _summary(self, head: RoomHead | None, state: Mapping[StateKey, Event],
                 user_id: str) -> dict[str, Any]:
        """name, avatar, heroes (when there is no name), joined and invited counts. A joined
        room's (its state is its head's) is kept with its head: the members are counted
        once per state."""
        return _for_user(_summarise(state) if head is None else head.derived(_summarise), user_id)

    # -- reading, in batches -------------------------------------------------------------

    async def _read_timelines(self, works: list[_Work]) -> None:
        windows = [(w.room_id, w.fetch[0], w.upto, w.fetch[1]) for w in works if w.fetch is not None]
        fetched = await self.queries.recent_events_of_rooms(windows) if windows else {}
        for work in works:
            if work.fetch is not None:
                _place_timeline(work, fetched.get(work.room_id, []))

    async def _filter_visible(self, works: list[_Work], user_id: str, ignored: set[str]) -> None:
        """History visibility and ignored users, with the membership histories of the rooms
        that need one read in one query."""
        needing = [w.room_id for w in works if w.timeline and not (
            w.request.entry.membership == "join" and w.request.entry.membership_stream <= w.timeline[0].stream_ordering)]
        histories = await self.queries.membership_histories(user_id, needing) if needing else {}
        for work in works:
            history = histories.get(work.room_id)
            work.timeline = [row for row in work.timeline
                             if (history is None or is_visible(row, user_id, history))
                             and (row.event.is_state or row.event.sender not in ignored)]

    async def _state_sources(self, works: list[_Work], heads) -> tuple[dict[str, Mapping[StateKey, Event]],
                                                                        dict[str, EventRow]]:
        """The state each room's required state comes from: the current state of joined
        rooms, the state when they left of the others (rare: read room by room)."""
        sources: dict[str, Mapping[StateKey, Event]] = {}
        departed = {w.room_id: w.request.entry.leave_event_id for w in works
                    if w.request.entry.membership != "join" and w.request.entry.leave_event_id}
        leave_rows = await self.rooms.store.get_event_rows(departed.values()) if departed else {}
        for work in works:
            if work.room_id in departed and departed[work.room_id] in leave_rows:
                state_ids = await self.timeline.state_at(leave_rows[departed[work.room_id]])
                events = await self.rooms.store.get_events(state_ids.values())
                sources[work.room_id] = {key: events[eid] for key, eid in state_ids.items() if eid in events}
            else:
                sources[work.room_id] = heads[work.room_id].state if work.room_id in heads else {}
        return sources, {room_id: leave_rows[event_id] for room_id, event_id in departed.items() if event_id in leave_rows}

    async def _serialize(self, requester: Requester, works: list[_Work], results: dict[str, dict],
                         state_ids: dict[str, dict[StateKey, str]], stubs: dict[str, list[StateKey]]) -> None:
        """Every room's timeline in one call, every room's required state in another."""
        included = [w for w in works if w.room_id in results]
        timeline_rows = [row for w in included for row in w.timeline]
        serialized = iter(await self.timeline.serialize(timeline_rows, requester) if timeline_rows else [])
        for work in included:
            if work.timeline:
                results[work.room_id]["timeline"] = [next(serialized) for _ in work.timeline]
        rows = await self.rooms.store.get_event_rows(eid for ids in state_ids.values() for eid in ids.values())
        state_rows = [rows[eid] for ids in state_ids.values() for eid in ids.values() if eid in rows]
        by_id = dict(zip((row.event.event_id for row in state_rows),
                         await self.timeline.serialize(state_rows, requester) if state_rows else []))
        for room_id, ids in state_ids.items():
            required = [by_id[eid] for eid in ids.values() if eid in by_id]
            required += [{"type": event_type, "state_key": state_key} for event_type, state_key in stubs[room_id]]
            if required:
                results[room_id]["required_state"] = required


# -- deciding, per room (pure) -----------------------------------------------------------------


def _counts(counts: Mapping[str, dict], room_id: str, entry: Entry) -> dict[str, int]:
    if entry.membership != "join":
        return {}
    room = counts.get(room_id, {})
    return {"notification_count": room.get("notification_count", 0), "highlight_count": room.get("highlight_count", 0)}


def _plan(request: RoomRequest, sent: RoomSent | None, now: SyncToken, newest: int,
          cheap: dict[str, Any]) -> _Work | None:
    """Whether the room needs looking at, and which events to read; None if nothing changed."""
    entry, config = request.entry, request.config
    upto = now.events if entry.membership == "join" else entry.membership_stream
    limit = config.timeline_limit
    initial = sent is None or sent.stripped
    work = _Work(request, sent, upto, initial, cheap)
    if initial:
        work.fetch = (0, limit + 1)
        return work
    work.covered_from = sent.covered_from
    moved = (newest if entry.membership == "join" else entry.membership_stream) > sent.stream
    membership_changed = sent.membership_stream != entry.membership_stream
    if not (moved or membership_changed or not config.same_as(sent.config)
            or any(sent.fields.get(key) != value for key, value in cheap.items())):
        return None
    if limit > (sent.config.timeline_limit if sent.config is not None else 0):
        work.fetch, work.expansion_check = (0, limit + 1), True
    elif moved or membership_changed:
        work.fetch = (sent.stream, limit + 1)
    return work


def _place_timeline(work: _Work, rows: list[EventRow]) -> None:
    """Choose the timeline among the events read, and what the client then holds."""
    limit, sent = work.request.config.timeline_limit, work.sent
    latest = rows[-limit:] if limit else []
    work.rows = rows
    if work.initial:
        work.new_rows, work.timeline, work.limited = rows, latest, len(rows) > limit
    else:
        work.new_rows = [row for row in rows if row.stream_ordering > sent.stream]
        if work.expansion_check and latest and latest[0].stream_ordering < sent.covered_from:
            work.timeline, work.limited, work.expanded = latest, len(rows) > limit, True
        else:
            work.timeline = work.new_rows[-limit:] if limit else []
            work.limited = len(work.new_rows) > limit
    if work.initial or work.expanded:
        work.covered_from = 0 if not work.limited else (work.timeline[0].stream_ordering if work.timeline else work.upto + 1)
    elif work.limited:
        work.covered_from = work.timeline[0].stream_ordering if work.timeline else work.upto + 1


def _state_delta(work: _Work, state: Mapping[StateKey, Event],
                 user_id: str) -> tuple[dict[StateKey, str], dict[StateKey, Event], list[StateKey]]:
    """(the required state the client holds after this response, what to send it, the keys
    it holds that no longer exist). Only the keys of the state events read are compared when
    nothing else can have changed; otherwise all state the config matches."""
    config, sent = work.request.config, work.sent
    held = dict(sent.state) if not work.initial else {}
    if work.limited and config.lazy_members and not work.initial:
        # After a gap the client drops the members it cached: lazy members start over.
        held = {key: eid for key, eid in held.items() if key[0] != MEMBER}
    quick = not (work.initial or work.limited or work.expanded or not config.same_as(sent.config)
                 or sent.membership_stream != work.request.entry.membership_stream)
    if quick:
        keys = {(row.event.type, row.event.state_key) for row in work.new_rows if row.event.is_state}
        wanted = {key: state[key] for key in keys if key in state and config.matches(key[0], key[1], user_id)}
    elif config.exact_keys:
        wanted = {}
        for rule in config.exact_rules():
            key = (rule.type, user_id if rule.state_key == ME else rule.state_key)
            if key in state and config.matches(key[0], key[1], user_id):
                wanted[key] = state[key]
    else:
        wanted = {key: event for key, event in state.items() if config.matches(key[0], key[1], user_id)}
    if config.lazy_members:
        needed = {row.event.sender for row in work.timeline}
        needed.update(row.event.state_key for row in work.timeline if row.event.type == MEMBER)
        for member in needed:
            key = (MEMBER, member)
            if key in state:
                wanted[key] = state[key]
    send = {key: event for key, event in wanted.items() if held.get(key) != event.event_id}
    gone = [] if quick else [key for key in held if key not in state and config.matches(key[0], key[1], user_id)]
    held.update((key, event.event_id) for key, event in send.items())
    for key in gone:
        del held[key]
    return held, send, gone


@dataclass(frozen=True, slots=True)
class _Summary:
    name: str | None
    avatar: str | None
    joined: int
    invited: int
    #: The first HEROES + 1 members by the proposal's order, as (user ID, hero).
    heroes: tuple[tuple[str, tuple], ...]


def _summarise(state: Mapping[StateKey, Event]) -> _Summary:
    name_event = state.get(("m.room.name", ""))
    name = name_event.content.get("name") if name_event is not None else None
    avatar_event = state.get(("m.room.avatar", ""))
    avatar = avatar_event.content.get("url") if avatar_event is not None else None
    joined = invited = 0
    members = []
    for (event_type, state_key), event in state.items():
        if event_type != MEMBER:
            continue
        membership = event.membership
        joined += membership == "join"
        invited += membership == "invite"
        members.append((_HERO_ORDER.get(membership, 2), event.depth, state_key, event))
    heroes = tuple((key, _hero(key, event)) for _, _, key, event in sorted(members)[:HEROES + 1])
    return _Summary(name if isinstance(name, str) and name else None, avatar if isinstance(avatar, str) and avatar else None,
                    joined, invited, heroes)


def _for_user(summary: _Summary, user_id: str) -> dict[str, Any]:
    """The summary's fields as `user_id` sees them: heroes leave them out, and go only with
    a room without a name."""
    heroes = None
    if summary.name is None:
        heroes = tuple(hero for member, hero in summary.heroes if member != user_id)[:HEROES]
    return {"name": summary.name, "avatar": summary.avatar, "joined_count": summary.joined,
            "invited_count": summary.invited, "heroes": heroes}


def _hero(user_id: str, event: Event) -> tuple[tuple[str, str], ...]:
    hero = [("user_id", user_id)]
    for name in ("displayname", "avatar_url"):
        value = event.content.get(name)
        if isinstance(value, str):
            hero.append((name, value))
    return tuple(hero)


def _result(work: _Work, changed: dict[str, Any], live_since: int | None,
            after: tuple[int, int] | None) -> dict[str, Any]:
    """A room's result but its timeline and required state (serialised for all rooms at once).
    `after` is the place to paginate back from when the timeline is empty."""
    result = changed
    if work.initial:
        result["initial"] = True
    if work.request.lists:
        result["lists"] = work.request.lists
    if work.expanded:
        # `unstable_expanded_timeline` is the name deployed clients read.
        result["expanded_timeline"] = result["unstable_expanded_timeline"] = True
    result["limited"] = work.limited
    result["num_live"] = 0 if live_since is None else sum(r.stream_ordering > live_since for r in work.timeline)
    if work.timeline:
        result["prev_batch"] = room_token(work.timeline[0].key)
    elif after is not None:
        result["prev_batch"] = room_token(position_after(after))
    return result


def _changed_fields(fields: Mapping[str, Any], before: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields to send: on a first send those with a value, later those that changed
    (a removed name or avatar as null)."""
    result: dict[str, Any] = {}
    for key, value in fields.items():
        if before is None:
            if value is None or value is False or value == ():
                continue
        elif before.get(key) == value:
            continue
        if key != "heroes":
            result[key] = value
        elif value is not None:  # heroes only go with a room without a name
            result[key] = [dict(hero) for hero in value]
    return result
