"""How events of every origin enter a room's graph: `RoomServer.input(events, kind)`.

Each event is authorised three ways, as the server-server API asks: against its own auth
events (else it is rejected), against the state before it (else rejected), and, for new
events from other servers, against the room's current state (else it is soft-failed:
stored and part of the graph, but never shown to clients nor followed by new events).
The state before an event is the state after its prev event, or, where several branches
meet, their states resolved. Outliers (events known without the state before them) are
checked against their auth events only. Backfilled history and outliers never move the
room's head; new events do: the forward extremities, and the current state, resolved
across them when there are several.

Events /sync reports get the next stream positions; all others (history, outliers,
rejected and soft-failed events) get positions below zero, which /sync never reaches.
"""

from __future__ import annotations

import enum
import logging
from collections import ChainMap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from ranvier.events import auth as auth_rules
from ranvier.events.auth import AuthError
from ranvier.events.model import CREATE, MEMBER, Event
from ranvier.events.room_versions import RoomVersion
from ranvier.rooms.head import Draft, RoomHead, State, joined_members
from ranvier.rooms.store import EventRow, HeadChange, NewRoom, PersistedEvent, StateMap

if TYPE_CHECKING:
    from ranvier.rooms.service import RoomServer

log = logging.getLogger(__name__)

HISTORY_VISIBILITY = "m.room.history_visibility"
#: Events from other servers with more prev or auth events are refused (as Synapse does):
#: they would make a huge state resolution or a cascade of fetches.
MAX_REMOTE_PREV_EVENTS = 20
MAX_REMOTE_AUTH_EVENTS = 10


class EventKind(enum.Enum):
    #: Built by this server (and countersigned by another: invites, knocks, leaves).
    LOCAL = "local"
    #: New events from other servers.
    REMOTE = "remote"
    #: Events known without the state before them: auth chains, a joined room's state.
    OUTLIER = "outlier"
    #: History older than what the room's timeline holds.
    BACKFILL = "backfill"


@dataclass
class Outcome:
    """What became of one event given to `input`."""

    event_id: str
    stream_ordering: int
    rejected_reason: str | None = None
    soft_failed: bool = False
    #: It was stored already (and nothing changed).
    known: bool = False

    @property
    def accepted(self) -> bool:
        return self.rejected_reason is None and not self.soft_failed


@dataclass
class Batch:
    """Everything one call writes in one transaction, and how the head moves."""

    head: RoomHead
    items: list[PersistedEvent]
    change: HeadChange
    #: The room's head after the batch (None: the head does not move).
    new_head: RoomHead | None = None
    new_room: NewRoom | None = None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: Stream positions handed out (to finish once committed or abandoned).
    positions: list[int] = field(default_factory=list)
    #: Users whose long polls learn of it (invitees, the kicked ...).
    wake_users: tuple[str, ...] = ()

    @property
    def state_groups(self) -> list[int]:
        groups = [group.state_group for item in self.items for group in item.new_state_groups]
        return groups + [group.state_group for group in self.change.state_groups]


@dataclass
class _Placed:
    """The state after one event of a batch (what events following it start from)."""

    after: State
    group_after: int
    chain_after: int


class EventInput:
    """The graph-building half of the room server; it owns no state of its own."""

    def __init__(self, rooms: "RoomServer") -> None:
        self.rooms = rooms

    # -- local events (the fast path: built on the head in memory) --------------------------

    async def batch_from_draft(self, draft: Draft) -> Batch:
        """The batch of locally built events: each was authorised as it was built, on
        the state the ones before it left, so only the head's move is left to work out
        (in memory, unless the draft named only some of many forward extremities)."""
        head = draft.head
        items = draft.items
        for item in items:
            item.stream_ordering = self.rooms.positions.allocate()
        first_prevs = items[0].event.prev_event_ids
        last = items[-1].event
        change = HeadChange(head.room_id, state_groups=list(draft.new_groups))
        batch = Batch(head, items, change, positions=[item.stream_ordering for item in items],
                      wake_users=tuple(item.event.state_key for item in items if item.event.type == MEMBER))
        extremities = {e: d for e, d in head.extremities.items() if e not in first_prevs}
        extremities[last.event_id] = last.depth
        change.extremities = list(extremities)
        if len(extremities) > 1:
            placed = {last.event_id: _Placed(draft.full_state(), draft.state_group, draft.chain_length)}
            await self._resolve_current(batch, extremities, placed, {item.event.event_id: item.event for item in items})
            return batch
        changes = [(item.stream_ordering, (item.event.type, item.event.state_key), item.event)
                   for item in items if item.event.is_state]
        if changes:
            change.state_group = draft.state_group
            change.state_changes = changes
            batch.new_head = RoomHead(head.room_id, head.version, draft.full_state(), draft.state_group,
                                      draft.chain_length, extremities, draft.joined_members())
        else:
            batch.new_head = head.with_extremities(extremities)
        return batch

    # -- events from anywhere ------------------------------------------------------------

    async def process(self, head: RoomHead | None, room_id: str, events: list[Event], kind: EventKind, *,
                      state_before: dict[str, StateMap], version: RoomVersion) -> Batch:
        """Check, place and order a batch of events of one room; returns what to write."""
        rooms = self.rooms
        resident = head is not None and head.resident
        working = head if resident else RoomHead(room_id, version, {}, 0, 0, {})
        batch = Batch(working, [], HeadChange(room_id))
        known_rows = await rooms.store.get_event_rows(event.event_id for event in events)
        fresh: list[Event] = []
        for event in _topological(events):
            row = known_rows.get(event.event_id)
            if event.event_id in batch.outcomes:
                continue
            if row is not None and (not row.outlier or kind == EventKind.OUTLIER):
                batch.outcomes[event.event_id] = Outcome(event.event_id, row.stream_ordering,
                                                         row.event.rejected_reason, row.soft_failed, known=True)
                continue
            fresh.append(event)
        if not fresh:
            return batch
        in_batch = {event.event_id: event for event in fresh}
        needed = {ref for event in fresh for ref in (*event.auth_event_ids, *event.prev_event_ids)
                  if ref not in in_batch}
        if version.room_id_is_create_event_id:
            needed.add("$" + room_id[1:])
        stored = await rooms.store.get_event_rows(needed)
        placed: dict[str, _Placed] = {}
        current = ChainMap({}, working.state)  # the current state as the batch moves it, for soft failure
        for event in fresh:
            item = await self._place(batch, event, kind, version, in_batch, stored, placed, state_before, current,
                                     replaces_outlier=event.event_id in known_rows)
            batch.items.append(item)
        self._number(batch, kind)
        if kind != EventKind.OUTLIER:
            await self._move_head(batch, head, kind, placed, stored, in_batch)
        return batch

    async def _place(self, batch: Batch, event: Event, kind: EventKind, version: RoomVersion,
                     in_batch: dict[str, Event], stored: dict[str, EventRow], placed: dict[str, _Placed],
                     state_before: dict[str, StateMap], current: ChainMap, *,
                     replaces_outlier: bool) -> PersistedEvent:
        """Authorise one event and work out the state around it."""
        rejected = self._check_against_auth_events(event, version, in_batch, stored, batch)
        item = PersistedEvent(event, 0, 0, "shared", replaces_outlier=replaces_outlier)
        if kind == EventKind.OUTLIER:
            item.outlier = True
            item.rejected_reason = rejected
            _note_outcome(batch, item)
            return item
        around = await self._state_before(event, version, in_batch, stored, placed, state_before, batch)
        if around is None:
            log.info("no state known before %s in %s: kept as an outlier", event.event_id, event.room_id)
            item.outlier = True
            item.rejected_reason = rejected
            _note_outcome(batch, item)
            return item
        before, group_before, chain_before = around
        if rejected is None:
            rejected = _auth_failure(version, event, before)
        item.state_group_before = item.state_group_after = group_before
        item.rejected_reason = rejected
        visibility_event = before.get((HISTORY_VISIBILITY, ""))
        visibility = visibility_event.content.get("history_visibility") if visibility_event else None
        item.history_visibility = visibility if isinstance(visibility, str) else "shared"
        after, group_after, chain_after = before, group_before, chain_before
        if rejected is None:
            if kind == EventKind.REMOTE and batch.head.resident and _auth_failure(version, event, current) is not None:
                item.soft_failed = True
            if event.is_state:
                key = (event.type, event.state_key)
                replaced = before.get(key)
                item.replaces_state = replaced.event_id if replaced else None
                new_group, chain_after = self.rooms.states.with_event(
                    group_before, chain_before, key, event.event_id,
                    lambda: _ids(before))
                item.new_state_groups.append(new_group)
                group_after = item.state_group_after = new_group.state_group
                after = {**before, key: event}
                if not item.soft_failed:
                    current[key] = event
            _relations(item)
            if kind == EventKind.BACKFILL:
                item.backfilled = True
            item.redacts = _applied_redaction(event, before, stored, in_batch)
        placed[event.event_id] = _Placed(after, group_after, chain_after)
        _note_outcome(batch, item)
        return item

    def _check_against_auth_events(self, event: Event, version: RoomVersion, in_batch: dict[str, Event],
                                   stored: dict[str, EventRow], batch: Batch) -> str | None:
        """The first check: the event's own auth events allow it. A rejected reason, or None."""
        if event.room_id != batch.head.room_id:
            return "the event belongs to another room"
        if event.room_version.identifier != version.identifier:
            return "the event is not in the room's version"
        if event.type == CREATE:
            try:
                auth_rules.check_auth(version, event, {})
            except AuthError as exc:
                return exc.reason
            return None
        auth_events = []
        for auth_id in event.auth_event_ids:
            auth_event = in_batch.get(auth_id) or (stored[auth_id].event if auth_id in stored else None)
            if auth_event is None:
                return f"auth event {auth_id} is unknown"
            auth_events.append(auth_event)
        outcome = batch.outcomes.get  # auth events earlier in the batch may have been rejected
        for auth_event in auth_events:
            earlier = outcome(auth_event.event_id)
            if earlier is not None and earlier.rejected_reason is not None:
                return f"auth event {auth_event.event_id} was rejected"
        create = None
        if not version.create_event_in_auth_events:
            create_id = "$" + batch.head.room_id[1:]
            create = in_batch.get(create_id) or (stored[create_id].event if create_id in stored else None)
        try:
            auth_state = auth_rules.auth_state_from_auth_events(version, event, auth_events, create)
            auth_rules.check_auth(version, event, auth_state)
        except AuthError as exc:
            return exc.reason
        return None

    async def _state_before(self, event: Event, version: RoomVersion, in_batch: dict[str, Event],
                            stored: dict[str, EventRow], placed: dict[str, _Placed],
                            state_before: dict[str, StateMap], batch: Batch) -> tuple[State, int, int] | None:
        """(state, group, chain length) before the event: given by the caller (a join, a
        gap in the graph), the state after its one prev event, or the resolution of the
        states after its prev events. None when none of it is known."""
        states = self.rooms.states
        given = state_before.get(event.event_id)
        if given is not None:
            known = {**{k: r.event for k, r in stored.items()}, **in_batch}
            before = await states.events(given, known)
            group, chain = states.derive(0, {}, 0, given)
            batch.change.state_groups.append(group)
            return before, group.state_group, chain
        if event.type == CREATE:
            return {}, 0, 0
        afters: list[tuple[State | None, StateMap | None, int, int]] = []  # (events, ids: one known; group, chain)
        for prev_id in dict.fromkeys(event.prev_event_ids):
            if prev_id in placed:
                p = placed[prev_id]
                afters.append((p.after, None, p.group_after, p.chain_after))
            elif prev_id in stored and not stored[prev_id].outlier:
                group = stored[prev_id].state_group_after
                if group == batch.head.state_group and batch.head.resident:  # following the head: in memory
                    afters.append((batch.head.state, None, group, batch.head.chain_length))
                    continue
                ids, chain = await states.load(group)
                afters.append((None, ids, group, chain))
        if not afters:
            return None
        if len({group for _, _, group, _ in afters}) == 1:
            state, ids, group, chain = afters[0]
            return (state if state is not None else await states.events(ids, in_batch)), group, chain
        afters = [(state, ids if ids is not None else _ids(state), group, chain) for state, ids, group, chain in afters]
        resolved = await states.resolve(version, [ids for _, ids, _, _ in afters], in_batch)
        for state, ids, group, chain in afters:
            if ids == resolved:
                return (state if state is not None else await states.events(ids, in_batch)), group, chain
        _, base_ids, base_group, base_chain = afters[0]
        new_group, chain = states.derive(base_group, base_ids, base_chain, resolved)
        batch.change.state_groups.append(new_group)
        return await states.events(resolved, in_batch), new_group.state_group, chain

    def _number(self, batch: Batch, kind: EventKind) -> None:
        """Stream positions: the next ones for new events clients see, below zero for the rest."""
        rooms = self.rooms
        for item in batch.items:
            if kind in (EventKind.REMOTE, EventKind.LOCAL) and item.in_timeline:
                item.stream_ordering = rooms.positions.allocate()
                batch.positions.append(item.stream_ordering)
            else:
                item.stream_ordering = rooms.allocate_history_position()
            batch.outcomes[item.event.event_id].stream_ordering = item.stream_ordering

    async def _move_head(self, batch: Batch, head: RoomHead | None, kind: EventKind, placed: dict[str, _Placed],
                         stored: dict[str, EventRow], in_batch: dict[str, Event]) -> None:
        """Backward extremities always; for new events also the forward extremities and
        the current state (resolved across the extremities when there are several)."""
        change = batch.change
        graph_items = [item for item in batch.items if not item.outlier]
        batch_ids = {item.event.event_id for item in graph_items}
        change.backward_removed = sorted(batch_ids)
        lacking: dict[str, int] = {}
        for item in graph_items:
            for prev_id in item.event.prev_event_ids:
                if prev_id not in batch_ids and (prev_id not in stored or stored[prev_id].outlier):
                    lacking[prev_id] = max(lacking.get(prev_id, 0), item.event.depth)
        change.backward_added = sorted(lacking.items())
        if kind == EventKind.BACKFILL:
            return
        working = batch.head
        extremities = dict(working.extremities)
        accepted = [item for item in graph_items if item.rejected_reason is None and not item.soft_failed]
        for item in accepted:
            for prev_id in item.event.prev_event_ids:
                extremities.pop(prev_id, None)
            extremities[item.event.event_id] = item.event.depth
        for event_id in await self.rooms.graph.awaited([item.event.event_id for item in accepted], working.room_id):
            extremities.pop(event_id, None)  # arrived after events that follow it
        if extremities == working.extremities:
            return
        change.extremities = list(extremities)
        await self._resolve_current(batch, extremities, placed, in_batch)
        if head is None or not head.resident:
            batch.new_room = _new_room(working.room_id, working.version, batch.new_head.state)

    async def _resolve_current(self, batch: Batch, extremities: dict[str, int], placed: dict[str, _Placed],
                               in_batch: dict[str, Event]) -> None:
        """The current state across the new forward extremities, and its changes."""
        states = self.rooms.states
        working = batch.head
        afters: list[tuple[StateMap | None, int, int, State | None]] = []  # (ids, group, chain, events)
        for event_id in extremities:
            if event_id in placed:
                p = placed[event_id]
                afters.append((None, p.group_after, p.chain_after, p.after))
            else:
                row = (await self.rooms.store.get_event_rows([event_id]))[event_id]
                ids, chain = await states.load(row.state_group_after)
                afters.append((ids, row.state_group_after, chain, None))
        if len(afters) == 1:
            chosen = afters[0]
        else:
            afters = [(ids if ids is not None else _ids(state), group, chain, state)
                      for ids, group, chain, state in afters]
            resolved = await states.resolve(working.version, [ids for ids, _, _, _ in afters], in_batch)
            chosen = next((a for a in afters if a[0] == resolved), None)
        if chosen is not None:
            ids, group, chain, state = chosen
            if state is None:
                state = await states.events(ids, in_batch)
        else:
            new_group, chain = states.derive(working.state_group, _ids(working.state), working.chain_length, resolved)
            batch.change.state_groups.append(new_group)
            group, state = new_group.state_group, await states.events(resolved, in_batch)
        changes = []
        if state is not working.state and group != working.state_group:
            last_position = max((item.stream_ordering for item in batch.items), default=0)
            positions = {item.event.event_id: item.stream_ordering for item in batch.items if item.stream_ordering > 0}
            for key in working.state.keys() | state.keys():
                event = state.get(key)
                old = working.state.get(key)
                if event is not None and (old is None or old.event_id != event.event_id):
                    changes.append((positions.get(event.event_id, last_position), key, event))
            changes.sort(key=lambda change: change[0])
            batch.change.state_group = group
            batch.change.state_changes = changes
        batch.new_head = RoomHead(working.room_id, working.version, state, group, chain, extremities,
                                  joined_members(state) if changes else working.joined)
        batch.wake_users = tuple(dict.fromkeys([*batch.wake_users, *(key[1] for _, key, _ in changes if key[0] == MEMBER)]))


def _ids(state: State) -> StateMap:
    return {key: event.event_id for key, event in state.items()}


def _topological(events: Iterable[Event]) -> list[Event]:
    """Events in an order where each comes after its prev events of the batch (by depth,
    then as the graph requires)."""
    by_id = {event.event_id: event for event in events}
    ordered: list[Event] = []
    done: set[str] = set()
    for event in sorted(by_id.values(), key=lambda e: (e.depth, e.event_id)):
        stack = [event]
        while stack:
            current = stack[-1]
            if current.event_id in done:
                stack.pop()
                continue
            waiting = [by_id[p] for p in current.prev_event_ids if p in by_id and p not in done
                       and by_id[p] not in stack]
            if waiting:
                stack += waiting
                continue
            stack.pop()
            done.add(current.event_id)
            ordered.append(current)
    return ordered


def _auth_failure(version: RoomVersion, event: Event, state: State | ChainMap) -> str | None:
    """Why `state` does not allow `event` (the keys the event would cite), or None."""
    if event.type == CREATE:
        return None
    keys = auth_rules.auth_types_for_event(version, event.type, event.sender, event.state_key, event.content)
    auth_state = {key: state[key] for key in keys if key in state}
    create = state.get(auth_rules.CREATE_KEY)
    if create is not None:
        auth_state[auth_rules.CREATE_KEY] = create
    try:
        auth_rules.check_auth(version, event, auth_state)
    except AuthError as exc:
        return exc.reason
    return None


def _relations(item: PersistedEvent) -> None:
    """The relation columns and media flag of an event clients will see."""
    content = item.event.content
    relation = content.get("m.relates_to")
    if (isinstance(relation, dict) and isinstance(relation.get("event_id"), str)
            and isinstance(relation.get("rel_type"), str)
            and "\x00" not in relation["event_id"] + relation["rel_type"]):
        item.relates_to, item.rel_type = relation["event_id"], relation["rel_type"]
    item.contains_url = isinstance(content.get("url"), str)


def _applied_redaction(event: Event, before: State, stored: dict[str, EventRow], in_batch: dict[str, Event]) -> str | None:
    """The event a redaction from another server redacts, when the rules let it apply
    (v3+: the redacter has the redact level, or both senders are of one server)."""
    target_id = event.redacts
    if target_id is None or "\x00" in target_id:
        return None
    target = in_batch.get(target_id) or (stored[target_id].event if target_id in stored else None)
    if target is None:
        return None  # nothing stored to mark
    return target_id if auth_rules.may_redact(before, event.sender, target.sender) else None


def _note_outcome(batch: Batch, item: PersistedEvent) -> None:
    batch.outcomes[item.event.event_id] = Outcome(item.event.event_id, 0, item.rejected_reason, item.soft_failed)


def _new_room(room_id: str, version: RoomVersion, state: State) -> NewRoom:
    """The rooms row of a room this server joins (or learns of) through another server."""
    create = state.get(auth_rules.CREATE_KEY)
    creator = ""
    room_type = None
    created_ts = 0
    if create is not None:
        creators = sorted(auth_rules.room_creators(create))
        creator = creators[0] if creators else create.sender
        room_type = create.content.get("type") if isinstance(create.content.get("type"), str) else None
        created_ts = create.origin_server_ts
    return NewRoom(room_id, version.identifier, creator, created_ts, False, room_type)

