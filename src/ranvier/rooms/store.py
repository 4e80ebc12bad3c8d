"""The room server's SQL for events, state groups, current state, memberships and aliases.

Events are written in batches (one transaction for everything `createRoom` makes, one
message, or one batch of events from another server), each with everything derived from
it and with the move of the room's head, so a failure leaves no trace. The graph's own
reads (auth chains, backfill, missing events) are in `graph_store.py`, the reads of /sync
in `sync_queries.py`, those of relations in `relations_store.py`.
"""

from __future__ import annotations

import asyncio
import bisect
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple, Protocol

import orjson

from ranvier.events.model import Event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.metrics import EVENT_CACHE_HITS, EVENT_CACHE_MISSES
from ranvier.rooms import statements
from ranvier.rooms.alias_store import AliasQueries
from ranvier.rooms.membership_store import MembershipQueries
from ranvier.rooms.statements import in_clause
from ranvier.storage.engine import Database, Statement, Transaction, any_of

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]

#: Parsed events kept, least recently used first out: a parsed message costs about 2 KiB,
#: so this bounds the cache near 4 MiB. What the hot paths read again and again (each
#: room's auth events and forward extremities) is in the rooms' heads besides; older
#: events are one query away. A warm initial sync of 100 rooms (1,000 timeline events)
#: took 39 ms on PostgreSQL with 1,000 and 31 ms with 2,000 (on SQLite as long with both).
_EVENT_CACHE_SIZE = 2_000
RECENT_EVENTS_PER_ROOM = 64
#: Rows in all the rooms' recent buffers together (about 1.2 MiB): past it, the buffers of
#: the rooms written to least recently are dropped (their /sync reads the database until
#: they are written to again; the next event written starts a buffer, which then serves
#: the syncs it wakes). With 1,024 the process held 1.3 MiB more after the benchmark's load.
_RECENT_EVENTS_KEPT = 512


@dataclass
class NewStateGroup:
    """A state group to write: a delta over `prev_group`, or a full snapshot when it is None."""

    state_group: int
    prev_group: int | None
    chain_length: int
    entries: StateMap


@dataclass
class PersistedEvent:
    """One event and everything the room server derived from it.

    `stream_ordering` is positive for events /sync reports (and out-of-band memberships),
    negative for the others: backfilled history, outliers, soft-failed and rejected events.
    """

    event: Event
    stream_ordering: int
    state_group_before: int
    history_visibility: str
    state_group_after: int = 0
    new_state_groups: list[NewStateGroup] = field(default_factory=list)
    txn_device: str | None = None
    txn_id: str | None = None
    relates_to: str | None = None
    rel_type: str | None = None
    contains_url: bool = False
    replaces_state: str | None = None
    #: The event this redaction redacts, when the rules let it apply.
    redacts: str | None = None
    #: Known without the state before it (auth chains, the state of a joined room, invites).
    outlier: bool = False
    backfilled: bool = False
    #: Allowed by the state before it but not by the room's current state (spec: soft failure).
    soft_failed: bool = False
    rejected_reason: str | None = None
    #: It was stored as an outlier and now takes its place in the room's timeline.
    replaces_outlier: bool = False
    #: What each persist hook prepared for this event, written in the same transaction.
    hook_data: list[tuple["PersistHook", Any]] = field(default_factory=list)

    @property
    def in_timeline(self) -> bool:
        """Whether clients ever see it in the room's timeline."""
        return not (self.outlier or self.soft_failed or self.rejected_reason is not None)


@dataclass
class HeadChange:
    """How a batch of events moves its room's head, written with the events."""

    room_id: str
    #: The room's forward extremities after the batch; None when they did not change.
    extremities: list[str] | None = None
    #: (event_id, depth of its deepest child) of events named as prev events but not held.
    backward_added: list[tuple[str, int]] = field(default_factory=list)
    backward_removed: list[str] = field(default_factory=list)
    #: The group of the room's new current state; None when it did not change.
    state_group: int | None = None
    #: State groups that belong to no one event (a resolved current state).
    state_groups: list[NewStateGroup] = field(default_factory=list)
    #: (stream position, key, event) of every current state entry that changed.
    state_changes: list[tuple[int, StateKey, Event]] = field(default_factory=list)


class PersistHook(Protocol):
    """Another service's rows derived from each new event (push actions, relations, ...).

    `prepare` runs while the event is built, with the room's state in memory; `write`
    stores what it returned inside the event's own transaction, so both commit together;
    `committed` runs after the commit (to update caches or wake readers). Only events that
    enter the room's timeline live (local ones and new ones from other servers) are shown
    to hooks; backfilled history, outliers and rejected or soft-failed events are not.
    """

    def prepare(self, draft: Any, event: Event, item: "PersistedEvent") -> Any:
        """Called with the room as it is before `event` (a `rooms.head.Draft`: `get(key)`,
        `joined_members()`, `head.version`); return None when there is nothing to write."""

    async def write(self, txn: Transaction, prepared: list[tuple["PersistedEvent", Any]]) -> None: ...

    def committed(self, prepared: list[tuple["PersistedEvent", Any]]) -> None: ...


@dataclass
class NewRoom:
    room_id: str
    room_version: str
    creator: str
    created_ts: int
    is_public: bool
    room_type: str | None
    aliases: list[str] = field(default_factory=list)


class HeadRow(NamedTuple):
    room_version: str
    state_group: int
    chain_length: int
    extremities: list[str]
    state: StateMap


class RoomRow(NamedTuple):
    room_version: str
    current_state_group: int
    creator: str
    is_public: bool
    room_type: str | None


@dataclass(slots=True)
class EventRow:
    """An event as stored, with what the read paths need besides the PDU.

    Slotted: thousands sit in the caches, and every object with a `__dict__` is one
    more the garbage collector walks on each full collection.
    """

    event: Event
    stream_ordering: int
    redacted_by: str | None
    history_visibility: str
    txn_device: str | None
    txn_id: str | None
    state_group_before: int
    replaces_state: str | None
    state_group_after: int = 0
    outlier: bool = False
    soft_failed: bool = False

    @property
    def key(self) -> tuple[int, int]:
        """The event's place in its room's timeline: (depth, stream ordering)."""
        return (self.event.depth, self.stream_ordering)


EVENT_COLUMNS = (
    "e.event_id, e.json, r.room_version, e.stream_ordering, e.redacted_by, e.history_visibility, "
    "e.txn_device, e.txn_id, e.state_group_before, e.replaces_state, e.state_group_after, e.outlier, "
    "e.soft_failed, e.rejected_reason"
)
#: The condition on events `e` that clients see in a timeline (/messages, /context ...).
IN_TIMELINE = "e.outlier = 0 AND e.soft_failed = 0 AND e.rejected_reason IS NULL"


def _persisted_row(item: PersistedEvent) -> EventRow:
    """The row of an event just written, as a read would return it."""
    item.event.rejected_reason = item.rejected_reason
    return EventRow(item.event, item.stream_ordering, None, item.history_visibility, item.txn_device, item.txn_id,
                    item.state_group_before, item.replaces_state, item.state_group_after, item.outlier,
                    item.soft_failed)


class RoomStore(AliasQueries, MembershipQueries):
    def __init__(self, db: Database) -> None:
        self.db = db
        self._events: OrderedDict[str, EventRow] = OrderedDict()
        #: room_id -> its newest events since this process started writing to it, in
        #: stream order, so /sync of active rooms needs no query; the room written to
        #: last is last.
        self._recent: OrderedDict[str, list[EventRow]] = OrderedDict()
        self._recent_count = 0

    # -- writing -------------------------------------------------------------------------

    async def persist(self, items: list[PersistedEvent], change: HeadChange, *,
                      new_room: NewRoom | None = None) -> "asyncio.Future[None]":
        """Store events in one transaction with their state groups and edges, and the move
        of the room's head (extremities, current state, memberships).

        Returns once the writes are done; the returned future completes when they are
        durable (the caller awaits it after releasing the room, so one room's events can
        share a group commit).
        """
        writes: list[Statement] = []
        if new_room is not None:
            writes.append(statements.new_room_statement(new_room, change.state_group or 0))
            writes.append(Statement("INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?)",
                                        [(alias, new_room.room_id, new_room.creator) for alias in new_room.aliases],
                                        many=True))
        replaced = [item.event.event_id for item in items if item.replaces_outlier]
        if replaced:
            writes.append(Statement(f"DELETE FROM events WHERE event_id IN ({in_clause(len(replaced))})", replaced))
        writes += statements.event_statements(items)
        groups = [group for item in items for group in item.new_state_groups] + change.state_groups
        writes += statements.state_group_statements(groups, change.room_id)
        for item in items:
            if item.redacts is not None and item.in_timeline:
                writes.append(Statement(
                    "UPDATE events SET redacted_by = ? WHERE event_id = ? AND room_id = ? AND redacted_by IS NULL",
                    (item.event.event_id, item.redacts, item.event.room_id),
                ))
        writes += statements.head_statements(change)
        async with self.db.transaction(wait_durable=False) as txn:
            await txn.execute_batch(writes)
            for hook, prepared in _group_hook_data(items).items():
                await hook.write(txn, prepared)
        return txn.durable

    def after_commit(self, items: list[PersistedEvent]) -> None:
        """Once durable: the events join their rooms' recent buffers, redactions mark
        their targets, and the hooks react."""
        for item in items:
            if item.stream_ordering > 0:
                self._add_recent(self._events.get(item.event.event_id) or _persisted_row(item))
            if item.redacts is not None and item.in_timeline:
                # the cached row and the recent one may be two objects (one was read again)
                for target in (self._events.get(item.redacts), self._recent_row(item.event.room_id, item.redacts)):
                    if target is not None and target.event.room_id == item.event.room_id and target.redacted_by is None:
                        target.redacted_by = item.event.event_id
        for hook, prepared in _group_hook_data(items).items():
            hook.committed(prepared)

    def _add_recent(self, row: EventRow) -> None:
        room_id = row.event.room_id
        buffer = self._recent.get(room_id)
        if buffer is None:
            buffer = self._recent[room_id] = []
        else:
            self._recent.move_to_end(room_id)
        if buffer and buffer[-1].stream_ordering > row.stream_ordering:
            bisect.insort(buffer, row, key=lambda r: r.stream_ordering)
        else:
            buffer.append(row)
        self._recent_count += 1
        if len(buffer) > RECENT_EVENTS_PER_ROOM:
            del buffer[0]
            self._recent_count -= 1
        while self._recent_count > _RECENT_EVENTS_KEPT:
            self._recent_count -= len(self._recent.popitem(last=False)[1])

    def _recent_row(self, room_id: str, event_id: str) -> EventRow | None:
        return next((row for row in self._recent.get(room_id, ()) if row.event.event_id == event_id), None)

    def recent_rows(self, room_id: str, since: int, upto: int, limit: int) -> list[EventRow] | None:
        """The newest `limit` rows with since < stream <= upto from memory, or None if the
        buffer (complete from its first row on) cannot tell."""
        buffer = self._recent.get(room_id)
        if not buffer:
            return None
        selected = [row for row in buffer if since < row.stream_ordering <= upto]
        if len(selected) >= limit or buffer[0].stream_ordering <= since + 1:
            return selected[-limit:] if limit else []
        return None

    def forget_room(self, room_id: str, *, only: set[str] | None = None) -> None:
        """Drop a purged room's events (or only the given ones) from the caches."""
        buffer = self._recent.pop(room_id, None)
        if buffer is not None:
            self._recent_count -= len(buffer)
            if only is not None:
                kept = self._recent[room_id] = [row for row in buffer if row.event.event_id not in only]
                self._recent_count += len(kept)
        for event_id in [event_id for event_id, row in self._events.items() if row.event.room_id == room_id
                         and (only is None or event_id in only)]:
            del self._events[event_id]

    def forget_events(self, event_ids: Iterable[str]) -> None:
        """Drop events whose transaction failed to commit (or whose row was replaced)."""
        for event_id in event_ids:
            self._events.pop(event_id, None)

    async def forget(self, room_id: str, user_id: str) -> None:
        await self.db.execute("UPDATE memberships SET forgotten = 1 WHERE room_id = ? AND user_id = ?", room_id, user_id)

    # -- rooms ---------------------------------------------------------------------------

    async def get_room(self, room_id: str) -> RoomRow | None:
        row = await self.db.fetchone(
            "SELECT room_version, current_state_group, creator, is_public, room_type FROM rooms WHERE room_id = ?",
            room_id,
        )
        return RoomRow(row[0], row[1], row[2], bool(row[3]), row[4]) if row else None

    async def max_positions(self) -> tuple[int, int, int]:
        """The last stream ordering, the first (negative: backfill) one and the last state
        group in use, to continue numbering after them."""
        row = await self.db.fetchone(
            "SELECT (SELECT COALESCE(MAX(stream_ordering), 0) FROM events), "
            "(SELECT COALESCE(MIN(stream_ordering), 0) FROM events), "
            "(SELECT COALESCE(MAX(state_group), 0) FROM state_groups)"
        )
        return row[0], row[1], row[2]

    async def set_public(self, room_id: str, is_public: bool) -> None:
        await self.db.execute("UPDATE rooms SET is_public = ? WHERE room_id = ?", int(is_public), room_id)

    async def forward_extremities(self, room_id: str) -> dict[str, int]:
        """event_id -> depth of the room's forward extremities (kept in its row: a new
        local event replaces the list, one small write)."""
        listed = await self.db.fetchval("SELECT forward_extremities FROM rooms WHERE room_id = ?", room_id)
        rows = await self.get_event_rows(orjson.loads(listed) if listed else [])
        return {event_id: row.event.depth for event_id, row in rows.items()}

    # -- events --------------------------------------------------------------------------

    def _row(self, row, known: Mapping[str, Event] | None = None) -> EventRow:
        """An EventRow of a row of `EVENT_COLUMNS`; its event taken from `known` when there
        (parsed already, by the same reader), else parsed."""
        (event_id, json_text, room_version, stream, redacted_by, visibility, txn_device, txn_id, group, replaces,
         group_after, outlier, soft_failed, rejected_reason) = row
        event = known.get(event_id) if known else None
        if event is None or event.rejected_reason != rejected_reason:
            event = Event(orjson.loads(json_text), ROOM_VERSIONS[room_version], event_id)
            event.rejected_reason = rejected_reason
        return EventRow(event, stream, redacted_by, visibility, txn_device, txn_id, group, replaces, group_after,
                        bool(outlier), bool(soft_failed))

    async def get_event_rows(self, event_ids: Iterable[str], *, cache: bool = True,
                             known: Mapping[str, Event] | None = None) -> dict[str, EventRow]:
        """Events by ID, from the cache or one query for the rest; those read are cached
        unless `cache` is False (a read of more events than the cache holds, which would
        evict them all, and everyone else's). Events the caller holds parsed already may
        come in `known`."""
        found: dict[str, EventRow] = {}
        missing = []
        for event_id in dict.fromkeys(event_ids):
            row = self._events.get(event_id)
            if row is None:
                missing.append(event_id)
            else:
                self._events.move_to_end(event_id)
                found[event_id] = row
        EVENT_CACHE_HITS.inc(len(found))
        if missing:
            EVENT_CACHE_MISSES.inc(len(missing))
        if missing:
            condition, ids = any_of(self.db, missing)
            rows = await self.db.fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id WHERE e.event_id {condition}",
                ids,
            )
            for raw in rows:
                row = found[raw[0]] = self._row(raw, known)
                if cache:
                    self._remember(row)
        return found

    def _remember(self, row: EventRow) -> None:
        row.event.share_strings()
        row.history_visibility = sys.intern(row.history_visibility)
        self._events[row.event.event_id] = row
        if len(self._events) > _EVENT_CACHE_SIZE:
            self._events.popitem(last=False)

    def remember_persisted(self, items: list[PersistedEvent]) -> None:
        """Put freshly written events in the cache; the writer has them in hand already."""
        for item in items:
            self._remember(_persisted_row(item))

    def worth_caching(self, count: int) -> bool:
        """Whether a read of `count` events may go into the event cache: at most half of
        it, so that a big read (a sync of many rooms) does not evict everything else."""
        return count <= _EVENT_CACHE_SIZE // 2

    def cached_event(self, event_id: str) -> Event | None:
        """An event from the cache only (those just written are always there)."""
        row = self._events.get(event_id)
        return row.event if row is not None else None

    def cached_rows(self, raw_rows, known: Mapping[str, Event] | None = None, *, cache: bool = True) -> list[EventRow]:
        """Rows of a query of `EVENT_COLUMNS` as EventRows, reusing the cached ones (and
        caching the rest unless `cache` is False); events the caller holds parsed already
        may come in `known`."""
        result = []
        for raw in raw_rows:
            cached = self._events.get(raw[0])
            if cached is None:
                cached = self._row(raw, known)
                if cache:
                    self._remember(cached)
            else:
                self._events.move_to_end(raw[0])
            result.append(cached)
        return result

    async def get_events(self, event_ids: Iterable[str], *, cache: bool = True) -> dict[str, Event]:
        rows = await self.get_event_rows(event_ids, cache=cache)
        return {event_id: row.event for event_id, row in rows.items()}

    async def event_by_txn(self, room_id: str, sender: str, device_id: str, txn_id: str) -> str | None:
        return await self.db.fetchval(
            "SELECT event_id FROM events WHERE room_id = ? AND sender = ? AND txn_device = ? AND txn_id = ?",
            room_id, sender, device_id, txn_id,
        )

    async def room_events(
        self, room_id: str, *, lower: tuple[int, int] | None, upper: tuple[int, int] | None, backwards: bool,
        limit: int,
    ) -> list[EventRow]:
        """A page of a room's timeline in topological (depth, stream) order across its
        branches: lower <= key < upper."""
        bounds, params = position_bounds(lower, upper)
        conditions = ["e.room_id = ?", IN_TIMELINE, *bounds]
        params = [room_id, *params]
        order = "DESC" if backwards else "ASC"
        rows = await self.db.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
            f"WHERE {' AND '.join(conditions)} ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT ?",
            *params, limit,
        )
        return self.cached_rows(rows)

    async def last_event_position(self, room_id: str, stream: int) -> tuple[int, int] | None:
        """(depth, stream) of the room's last event at or before a stream position."""
        row = await self.db.fetchone(
            "SELECT depth, stream_ordering FROM events WHERE room_id = ? AND stream_ordering <= ? "
            "AND stream_ordering > 0 ORDER BY stream_ordering DESC LIMIT 1",
            room_id, stream,
        )
        return (row[0], row[1]) if row else None

    async def pages_per_room(
        self, room_ids: list[str], *, event_type: str, lower: tuple[int, int] | None, upper: tuple[int, int] | None,
        backwards: bool, limit: int,
    ) -> dict[str, list[EventRow]]:
        """A page of each room's unredacted timeline events of one type with lower <= key <
        upper, in (depth, stream) order, nearest `upper` when backwards and nearest `lower`
        otherwise: one statement for many rooms (each room's page is its own index range scan)."""
        bounds, bound_params = position_bounds(lower, upper)
        order = "DESC" if backwards else "ASC"
        conditions = " AND ".join(["e.room_id = ?", "e.type = ?", "e.redacted_by IS NULL", IN_TIMELINE, *bounds])
        pages: dict[str, list[EventRow]] = {room_id: [] for room_id in room_ids}
        for start in range(0, len(room_ids), 100):
            chunk = room_ids[start:start + 100]
            selects, params = [], []
            for index, room_id in enumerate(chunk):
                selects.append(
                    f"SELECT * FROM (SELECT {EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
                    f"WHERE {conditions} ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT ?) AS page{index}"
                )
                params += [room_id, event_type, *bound_params, limit]
            for row in self.cached_rows(await self.db.fetchall(" UNION ALL ".join(selects), *params)):
                pages[row.event.room_id].append(row)
        return pages

    async def event_closest_to_ts(self, room_id: str, ts: int, forwards: bool) -> tuple[str, int] | None:
        """(event_id, origin_server_ts) of the timeline's event closest to `ts` in one direction."""
        if forwards:
            sql = (f"SELECT event_id, origin_server_ts FROM events e WHERE room_id = ? AND origin_server_ts >= ? "
                   f"AND {IN_TIMELINE} ORDER BY origin_server_ts ASC, stream_ordering ASC LIMIT 1")
        else:
            sql = (f"SELECT event_id, origin_server_ts FROM events e WHERE room_id = ? AND origin_server_ts <= ? "
                   f"AND {IN_TIMELINE} ORDER BY origin_server_ts DESC, stream_ordering DESC LIMIT 1")
        row = await self.db.fetchone(sql, room_id, ts)
        return (row[0], row[1]) if row else None

    # -- state ---------------------------------------------------------------------------

    async def load_state_group(self, state_group: int) -> tuple[StateMap, int]:
        """The full state of a group (its snapshot base and deltas) and the length of its
        delta chain, in one query."""
        rows = await self.db.fetchall(
            "WITH RECURSIVE chain(state_group, prev_group, n, chain_length) AS ("
            " SELECT state_group, prev_group, 0, chain_length FROM state_groups WHERE state_group = ?"
            " UNION ALL"
            " SELECT g.state_group, g.prev_group, chain.n + 1, chain.chain_length"
            " FROM state_groups g JOIN chain ON g.state_group = chain.prev_group"
            ") SELECT chain.n, s.type, s.state_key, s.event_id, chain.chain_length FROM chain "
            "JOIN state_group_entries s ON s.state_group = chain.state_group ORDER BY chain.n DESC",
            state_group,
        )
        state: StateMap = {}
        for _, event_type, state_key, event_id, _ in rows:
            state[(event_type, state_key)] = event_id
        if rows:
            return state, rows[0][4] or 0
        chain_length = await self.db.fetchval("SELECT chain_length FROM state_groups WHERE state_group = ?",
                                              state_group)
        return state, chain_length or 0

    async def load_state_groups(self, state_groups: list[int]) -> dict[int, StateMap]:
        """The full states of many groups (each its snapshot base and deltas), in one
        recursive query, the groups as one array (as `any_of` does for strings)."""
        states: dict[int, StateMap] = {state_group: {} for state_group in state_groups}
        if not state_groups:
            return states
        if self.db.dialect == "postgresql":
            condition, groups = "= ANY(?::bigint[])", state_groups
        else:
            condition, groups = "IN (SELECT value FROM json_each(?))", orjson.dumps(state_groups).decode()
        rows = await self.db.fetchall(
            "WITH RECURSIVE chain(root, state_group, prev_group, n) AS ("
            f" SELECT state_group, state_group, prev_group, 0 FROM state_groups WHERE state_group {condition}"
            " UNION ALL"
            " SELECT chain.root, g.state_group, g.prev_group, chain.n + 1"
            " FROM state_groups g JOIN chain ON g.state_group = chain.prev_group"
            ") SELECT chain.root, s.type, s.state_key, s.event_id FROM chain "
            "JOIN state_group_entries s ON s.state_group = chain.state_group ORDER BY chain.root, chain.n DESC",
            groups,
        )
        for root, event_type, state_key, event_id in rows:
            states[root][(event_type, state_key)] = event_id
        return states

    async def heads_of_rooms(self, room_ids: list[str]) -> dict[str, "HeadRow"]:
        """What the heads of many rooms are made of, in two queries."""
        if not room_ids:
            return {}
        condition, ids = any_of(self.db, room_ids)
        rooms = await self.db.fetchall(
            "SELECT r.room_id, r.room_version, r.current_state_group, COALESCE(g.chain_length, 0), "
            "r.forward_extremities FROM rooms r LEFT JOIN state_groups g ON g.state_group = r.current_state_group "
            f"WHERE r.room_id {condition}",
            ids,
        )
        states: dict[str, StateMap] = {row[0]: {} for row in rooms}
        for room_id, event_type, state_key, event_id in await self.db.fetchall(
                f"SELECT room_id, type, state_key, event_id FROM current_state WHERE room_id {condition}", ids):
            states[room_id][(event_type, state_key)] = event_id
        return {room_id: HeadRow(version, group, chain_length, orjson.loads(extremities), states[room_id])
                for room_id, version, group, chain_length, extremities in rooms}

    async def current_state_ids(self, room_id: str) -> StateMap:
        rows = await self.db.fetchall("SELECT type, state_key, event_id FROM current_state WHERE room_id = ?", room_id)
        return {(t, sk): eid for t, sk, eid in rows}

    async def record_out_of_band_membership(self, item: PersistedEvent, new_room: NewRoom | None) -> "asyncio.Future[None]":
        """An invite (or its rejection, or a knock) for a room this server is not in: the
        event, an outlier, and the user's membership, which /sync reports at its position."""
        event = item.event
        writes = [statements.new_room_statement(new_room, 0, if_absent=True)] if new_room is not None else []
        writes += statements.event_statements([item])
        writes += statements.membership_statements(event.room_id, [(item.stream_ordering, event)])
        async with self.db.transaction(wait_durable=False) as txn:
            await txn.execute_batch(writes)
        return txn.durable


def position_bounds(lower: tuple[int, int] | None, upper: tuple[int, int] | None) -> tuple[list[str], list[Any]]:
    """SQL conditions for lower <= (depth, stream) < upper on events `e`, with their parameters."""
    conditions: list[str] = []
    params: list[Any] = []
    if lower is not None:
        conditions.append("(e.depth > ? OR (e.depth = ? AND e.stream_ordering >= ?))")
        params += [lower[0], lower[0], lower[1]]
    if upper is not None:
        conditions.append("(e.depth < ? OR (e.depth = ? AND e.stream_ordering < ?))")
        params += [upper[0], upper[0], upper[1]]
    return conditions, params


def _group_hook_data(items: list[PersistedEvent]) -> dict[PersistHook, list[tuple[PersistedEvent, Any]]]:
    grouped: dict[PersistHook, list[tuple[PersistedEvent, Any]]] = {}
    for item in items:
        for hook, prepared in item.hook_data:
            if prepared is not None:
                grouped.setdefault(hook, []).append((item, prepared))
    return grouped
