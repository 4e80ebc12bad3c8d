"""All SQL of the room server: events, state groups, current state, memberships, aliases.

Events are written in batches (one transaction for everything `createRoom` makes, or one
message), each with everything derived from it, so a failure leaves no trace.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import orjson

from ranvier.events.model import Event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.metrics import EVENT_CACHE_HITS, EVENT_CACHE_MISSES
from ranvier.storage.engine import Database, Queries, Statement, Transaction

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]

_EVENT_CACHE_SIZE = 5_000
RECENT_EVENTS_PER_ROOM = 64


@dataclass
class NewStateGroup:
    """A state group to write: a delta over `prev_group`, or a full snapshot when it is None."""

    state_group: int
    prev_group: int | None
    chain_length: int
    entries: StateMap


@dataclass
class PersistedEvent:
    """One event and everything the room server derived from it."""

    event: Event
    stream_ordering: int
    state_group_before: int
    history_visibility: str
    new_state_group: NewStateGroup | None = None
    txn_device: str | None = None
    txn_id: str | None = None
    relates_to: str | None = None
    rel_type: str | None = None
    contains_url: bool = False
    replaces_state: str | None = None
    #: What each persist hook prepared for this event, written in the same transaction.
    hook_data: list[tuple["PersistHook", Any]] = field(default_factory=list)


class PersistHook(Protocol):
    """Another service's rows derived from each new event (push actions, relations, ...).

    `prepare` runs while the event is built, with the room's state in memory; `write`
    stores what it returned inside the event's own transaction, so both commit together;
    `committed` runs after the commit (to update caches or wake readers).
    """

    def prepare(self, draft: Any, event: Event, item: "PersistedEvent") -> Any:
        """Called with the room as it is before `event` (a `rooms.service.Draft`: `get(key)`,
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

    @property
    def key(self) -> tuple[int, int]:
        """The event's place in its room's timeline: (depth, stream ordering)."""
        return (self.event.depth, self.stream_ordering)


_EVENT_COLUMNS = (
    "e.event_id, e.json, r.room_version, e.stream_ordering, e.redacted_by, e.history_visibility, "
    "e.txn_device, e.txn_id, e.state_group_before, e.replaces_state"
)


class RoomStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._events: OrderedDict[str, EventRow] = OrderedDict()
        #: room_id -> its newest events since this process started writing to it, in
        #: stream order, so /sync of active rooms needs no query.
        self._recent: dict[str, list[EventRow]] = {}

    # -- writing -------------------------------------------------------------------------

    async def persist(self, items: list[PersistedEvent], *, new_room: NewRoom | None = None) -> "asyncio.Future[None]":
        """Store events in one transaction with their state, memberships and the room's head.

        Returns once the writes are done; the returned future completes when they are
        durable (the caller awaits it after releasing the room, so one room's events can
        share a group commit).
        """
        statements: list[Statement] = []
        if new_room is not None:
            statements += _new_room_statements(new_room, items)
        statements.append(Statement(
            "INSERT INTO events (stream_ordering, event_id, room_id, type, state_key, sender, depth, "
            "origin_server_ts, state_group_before, history_visibility, contains_url, relates_to, rel_type, "
            "replaces_state, redacted_by, txn_device, txn_id, json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            [
                (
                    item.stream_ordering, item.event.event_id, item.event.room_id, item.event.type,
                    item.event.state_key, item.event.sender, item.event.depth, item.event.origin_server_ts,
                    item.state_group_before, item.history_visibility, int(item.contains_url), item.relates_to,
                    item.rel_type, item.replaces_state, item.txn_device, item.txn_id,
                    orjson.dumps(item.event.pdu).decode(),
                )
                for item in items
            ],
            many=True,
        ))
        for item in items:
            statements += _state_statements(item)
            if item.event.redacts is not None:
                statements.append(Statement(
                    "UPDATE events SET redacted_by = ? WHERE event_id = ? AND room_id = ? AND redacted_by IS NULL",
                    (item.event.event_id, item.event.redacts, item.event.room_id),
                ))
        last = items[-1]
        group = next((i.new_state_group.state_group for i in reversed(items) if i.new_state_group), None)
        if group is None:
            statements.append(Statement("UPDATE rooms SET last_event_id = ?, last_depth = ? WHERE room_id = ?",
                                        (last.event.event_id, last.event.depth, last.event.room_id)))
        else:
            statements.append(Statement(
                "UPDATE rooms SET last_event_id = ?, last_depth = ?, current_state_group = ? WHERE room_id = ?",
                (last.event.event_id, last.event.depth, group, last.event.room_id),
            ))
        async with self.db.transaction(wait_durable=False) as txn:
            await txn.execute_batch(statements)
            for hook, prepared in _group_hook_data(items).items():
                await hook.write(txn, prepared)
        return txn.durable

    def after_commit(self, items: list[PersistedEvent]) -> None:
        """Once durable: the events join their rooms' recent buffers, redactions mark
        their targets, and the hooks react."""
        for item in items:
            row = self._events.get(item.event.event_id)
            if row is not None:
                self._add_recent(row)
            if item.event.redacts is not None:
                target = self._events.get(item.event.redacts) or self._recent_row(item.event.room_id, item.event.redacts)
                if target is not None and target.event.room_id == item.event.room_id and target.redacted_by is None:
                    target.redacted_by = item.event.event_id
        for hook, prepared in _group_hook_data(items).items():
            hook.committed(prepared)

    def _add_recent(self, row: EventRow) -> None:
        buffer = self._recent.get(row.event.room_id)
        if buffer is None:
            buffer = self._recent[row.event.room_id] = []
        if buffer and buffer[-1].stream_ordering > row.stream_ordering:
            bisect.insort(buffer, row, key=lambda r: r.stream_ordering)
        else:
            buffer.append(row)
        if len(buffer) > RECENT_EVENTS_PER_ROOM:
            del buffer[0]

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
        if buffer is not None and only is not None:
            self._recent[room_id] = [row for row in buffer if row.event.event_id not in only]
        for event_id in [event_id for event_id, row in self._events.items() if row.event.room_id == room_id
                         and (only is None or event_id in only)]:
            del self._events[event_id]

    def forget_events(self, event_ids: Iterable[str]) -> None:
        """Drop events whose transaction failed to commit."""
        for event_id in event_ids:
            self._events.pop(event_id, None)

    async def forget(self, room_id: str, user_id: str) -> None:
        await self.db.execute("UPDATE memberships SET forgotten = 1 WHERE room_id = ? AND user_id = ?", room_id, user_id)

    # -- rooms ---------------------------------------------------------------------------

    async def get_room(self, room_id: str) -> tuple[Any, ...] | None:
        """(room_version, current_state_group, last_event_id, last_depth, creator, is_public, room_type)."""
        return await self.db.fetchone(
            "SELECT room_version, current_state_group, last_event_id, last_depth, creator, is_public, room_type "
            "FROM rooms WHERE room_id = ?",
            room_id,
        )

    async def get_rooms(self, room_ids: list[str]) -> dict[str, tuple[Any, ...]]:
        """`get_room` of many rooms, in one query per 500; unknown rooms are left out."""
        found: dict[str, tuple[Any, ...]] = {}
        for chunk in _chunks(room_ids, 500):
            rows = await self.db.fetchall(
                "SELECT room_id, room_version, current_state_group, last_event_id, last_depth, creator, is_public, "
                f"room_type FROM rooms WHERE room_id IN ({', '.join('?' * len(chunk))})",
                *chunk,
            )
            found.update((row[0], tuple(row[1:])) for row in rows)
        return found

    async def max_positions(self) -> tuple[int, int]:
        """The last stream ordering and state group in use, to continue numbering after them."""
        row = await self.db.fetchone(
            "SELECT (SELECT COALESCE(MAX(stream_ordering), 0) FROM events), "
            "(SELECT COALESCE(MAX(state_group), 0) FROM state_groups)"
        )
        return row[0], row[1]

    async def set_public(self, room_id: str, is_public: bool) -> None:
        await self.db.execute("UPDATE rooms SET is_public = ? WHERE room_id = ?", int(is_public), room_id)

    # -- events --------------------------------------------------------------------------

    def _row(self, row) -> EventRow:
        event_id, json_text, room_version, stream, redacted_by, visibility, txn_device, txn_id, group, replaces = row
        event = Event(orjson.loads(json_text), ROOM_VERSIONS[room_version], event_id)
        return EventRow(event, stream, redacted_by, visibility, txn_device, txn_id, group, replaces)

    async def get_event_rows(self, event_ids: Iterable[str]) -> dict[str, EventRow]:
        """Events by ID, from the cache or one query for the rest."""
        found: dict[str, EventRow] = {}
        missing = []
        for event_id in dict.fromkeys(event_ids):
            row = self._events.get(event_id)
            if row is None:
                missing.append(event_id)
            else:
                found[event_id] = row
        EVENT_CACHE_HITS.inc(len(found))
        if missing:
            EVENT_CACHE_MISSES.inc(len(missing))
        for start in range(0, len(missing), 500):
            chunk = missing[start:start + 500]
            rows = await self.db.fetchall(
                f"SELECT {_EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
                f"WHERE e.event_id IN ({', '.join('?' * len(chunk))})",
                *chunk,
            )
            for raw in rows:
                self._remember(self._row(raw))
                found[raw[0]] = self._events[raw[0]]
        return found

    def _remember(self, row: EventRow) -> None:
        self._events[row.event.event_id] = row
        if len(self._events) > _EVENT_CACHE_SIZE:
            self._events.popitem(last=False)

    def remember_persisted(self, items: list[PersistedEvent]) -> None:
        """Put freshly written events in the cache; the writer has them in hand already."""
        for item in items:
            self._remember(EventRow(item.event, item.stream_ordering, None, item.history_visibility,
                                    item.txn_device, item.txn_id, item.state_group_before, item.replaces_state))

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, Event]:
        rows = await self.get_event_rows(event_ids)
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
        """A page of a room's timeline in (depth, stream) order: lower <= key < upper."""
        bounds, params = position_bounds(lower, upper)
        conditions = ["e.room_id = ?", *bounds]
        params = [room_id, *params]
        order = "DESC" if backwards else "ASC"
        rows = await self.db.fetchall(
            f"SELECT {_EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
            f"WHERE {' AND '.join(conditions)} ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT ?",
            *params, limit,
        )
        return self._cached_rows(rows)

    async def last_event_position(self, room_id: str, stream: int) -> tuple[int, int] | None:
        """(depth, stream) of the room's last event at or before a stream position."""
        row = await self.db.fetchone(
            "SELECT depth, stream_ordering FROM events WHERE room_id = ? AND stream_ordering <= ? "
            "ORDER BY stream_ordering DESC LIMIT 1",
            room_id, stream,
        )
        return (row[0], row[1]) if row else None

    async def pages_per_room(
        self, room_ids: list[str], *, event_type: str, lower: tuple[int, int] | None, upper: tuple[int, int] | None,
        backwards: bool, limit: int,
    ) -> dict[str, list[EventRow]]:
        """A page of each room's unredacted events of one type with lower <= key < upper, in
        (depth, stream) order, nearest `upper` when backwards and nearest `lower` otherwise:
        one statement for many rooms (each room's page is its own index range scan)."""
        bounds, bound_params = position_bounds(lower, upper)
        order = "DESC" if backwards else "ASC"
        conditions = " AND ".join(["e.room_id = ?", "e.type = ?", "e.redacted_by IS NULL", *bounds])
        pages: dict[str, list[EventRow]] = {room_id: [] for room_id in room_ids}
        for start in range(0, len(room_ids), 100):
            chunk = room_ids[start:start + 100]
            selects, params = [], []
            for index, room_id in enumerate(chunk):
                selects.append(
                    f"SELECT * FROM (SELECT {_EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
                    f"WHERE {conditions} ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT ?) AS page{index}"
                )
                params += [room_id, event_type, *bound_params, limit]
            for row in self._cached_rows(await self.db.fetchall(" UNION ALL ".join(selects), *params)):
                pages[row.event.room_id].append(row)
        return pages

    async def event_closest_to_ts(self, room_id: str, ts: int, forwards: bool) -> tuple[str, int] | None:
        if forwards:
            sql = ("SELECT event_id, origin_server_ts FROM events WHERE room_id = ? AND origin_server_ts >= ? "
                   "ORDER BY origin_server_ts ASC, stream_ordering ASC LIMIT 1")
        else:
            sql = ("SELECT event_id, origin_server_ts FROM events WHERE room_id = ? AND origin_server_ts <= ? "
                   "ORDER BY origin_server_ts DESC, stream_ordering DESC LIMIT 1")
        row = await self.db.fetchone(sql, room_id, ts)
        return (row[0], row[1]) if row else None

    # -- state ---------------------------------------------------------------------------

    async def load_state_group(self, state_group: int) -> StateMap:
        """The full state of a group: its snapshot base and deltas, in one query."""
        rows = await self.db.fetchall(
            "WITH RECURSIVE chain(state_group, prev_group, n) AS ("
            " SELECT state_group, prev_group, 0 FROM state_groups WHERE state_group = ?"
            " UNION ALL"
            " SELECT g.state_group, g.prev_group, chain.n + 1 FROM state_groups g JOIN chain ON g.state_group = chain.prev_group"
            ") SELECT chain.n, s.type, s.state_key, s.event_id FROM chain "
            "JOIN state_group_entries s ON s.state_group = chain.state_group ORDER BY chain.n DESC",
            state_group,
        )
        state: StateMap = {}
        for _, event_type, state_key, event_id in rows:
            state[(event_type, state_key)] = event_id
        return state

    async def current_state_ids(self, room_id: str) -> StateMap:
        rows = await self.db.fetchall("SELECT type, state_key, event_id FROM current_state WHERE room_id = ?", room_id)
        return {(t, sk): eid for t, sk, eid in rows}

    async def heads_of_rooms(self, room_ids: list[str]) -> dict[str, tuple[Any, ...]]:
        """room_id -> (room_version, current_state_group, last_event_id, last_depth, chain_length,
        current state IDs) of many rooms, in two queries per 500 rooms."""
        found: dict[str, tuple[Any, ...]] = {}
        for start in range(0, len(room_ids), 500):
            chunk = room_ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            rooms = await self.db.fetchall(
                "SELECT r.room_id, r.room_version, r.current_state_group, r.last_event_id, r.last_depth, "
                "COALESCE(g.chain_length, 0) FROM rooms r LEFT JOIN state_groups g ON g.state_group = r.current_state_group "
                f"WHERE r.room_id IN ({marks})",
                *chunk,
            )
            states: dict[str, StateMap] = {row[0]: {} for row in rooms}
            for room_id, event_type, state_key, event_id in await self.db.fetchall(
                    f"SELECT room_id, type, state_key, event_id FROM current_state WHERE room_id IN ({marks})", *chunk):
                states[room_id][(event_type, state_key)] = event_id
            for row in rooms:
                found[row[0]] = (*row[1:], states[row[0]])
        return found

    async def current_states(self, room_ids: list[str]) -> dict[str, StateMap]:
        """`current_state_ids` of many rooms, in one query per 500."""
        states: dict[str, StateMap] = {room_id: {} for room_id in room_ids}
        for chunk in _chunks(room_ids, 500):
            rows = await self.db.fetchall(
                "SELECT room_id, type, state_key, event_id FROM current_state "
                f"WHERE room_id IN ({', '.join('?' * len(chunk))})",
                *chunk,
            )
            for room_id, event_type, state_key, event_id in rows:
                states[room_id][(event_type, state_key)] = event_id
        return states

    async def chain_lengths(self, state_groups: list[int]) -> dict[int, int]:
        """How many deltas each state group sits above its snapshot."""
        lengths: dict[int, int] = {}
        for chunk in _chunks(state_groups, 500):
            rows = await self.db.fetchall(
                f"SELECT state_group, chain_length FROM state_groups WHERE state_group IN ({', '.join('?' * len(chunk))})",
                *chunk,
            )
            lengths.update((group, length) for group, length in rows)
        return lengths

    # -- memberships ---------------------------------------------------------------------

    async def rooms_of_user(self, user_id: str, memberships: tuple[str, ...]) -> list[tuple[str, str]]:
        """(room_id, membership) of a user's rooms in the given memberships, forgotten ones left out."""
        rows = await self.db.fetchall(
            f"SELECT room_id, membership FROM memberships WHERE user_id = ? AND forgotten = 0 "
            f"AND membership IN ({', '.join('?' * len(memberships))})",
            user_id, *memberships,
        )
        return [(r[0], r[1]) for r in rows]

    async def deactivated_members(self, memberships: tuple[str, ...]) -> list[str]:
        """Deactivated accounts that still hold one of the given memberships somewhere."""
        rows = await self.db.fetchall(
            f"SELECT DISTINCT m.user_id FROM users u JOIN memberships m ON m.user_id = u.user_id "
            f"WHERE u.deactivated = 1 AND m.membership IN ({', '.join('?' * len(memberships))})",
            *memberships,
        )
        return [r[0] for r in rows]

    async def membership_of(self, room_id: str, user_id: str) -> tuple[str, int, bool] | None:
        """(membership, stream_ordering, forgotten) of a user in a room, or None."""
        row = await self.db.fetchone(
            "SELECT membership, stream_ordering, forgotten FROM memberships WHERE room_id = ? AND user_id = ?",
            room_id, user_id,
        )
        return (row[0], row[1], bool(row[2])) if row else None

    async def membership_event_id(self, room_id: str, user_id: str) -> str | None:
        """The user's latest membership event in the room."""
        return await self.db.fetchval(
            "SELECT event_id FROM memberships WHERE room_id = ? AND user_id = ?", room_id, user_id
        )

    async def membership_history(self, room_id: str, user_id: str) -> list[tuple[int, str]]:
        rows = await self.db.fetchall(
            "SELECT stream_ordering, membership FROM membership_history WHERE room_id = ? AND user_id = ? "
            "ORDER BY stream_ordering",
            room_id, user_id,
        )
        return [(r[0], r[1]) for r in rows]

    async def members(self, room_id: str) -> list[tuple[str, str, str]]:
        """(user_id, membership, event_id) of everyone with a membership in the room."""
        rows = await self.db.fetchall(
            "SELECT user_id, membership, event_id FROM memberships WHERE room_id = ?", room_id
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # -- aliases -------------------------------------------------------------------------

    async def room_of_alias(self, alias: str) -> str | None:
        return await self.db.fetchval("SELECT room_id FROM room_aliases WHERE alias = ?", alias)

    # -- directory (aliases, publication) --------------------------------------------------
    # Used by rooms/directory.py and rooms/upgrade.py.

    async def create_alias(self, alias: str, room_id: str, creator: str) -> bool:
        """Map a local alias to a room; False if the alias is already taken."""
        return bool(await self.db.execute(
            "INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?) ON CONFLICT (alias) DO NOTHING",
            alias, room_id, creator,
        ))

    async def alias_entry(self, alias: str) -> tuple[str, str] | None:
        """(room_id, creator) of a local alias, or None."""
        row = await self.db.fetchone("SELECT room_id, creator FROM room_aliases WHERE alias = ?", alias)
        return (row[0], row[1]) if row else None

    async def delete_alias(self, alias: str) -> bool:
        return bool(await self.db.execute("DELETE FROM room_aliases WHERE alias = ?", alias))

    async def aliases_of_room(self, room_id: str) -> list[str]:
        rows = await self.db.fetchall("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", room_id)
        return [row[0] for row in rows]

    async def move_aliases(self, old_room_id: str, new_room_id: str) -> list[str]:
        """Point every local alias of one room at another (room upgrades); returns them."""
        async with self.db.transaction() as txn:
            rows = await txn.fetchall("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", old_room_id)
            await txn.execute("UPDATE room_aliases SET room_id = ? WHERE room_id = ?", new_room_id, old_room_id)
        return [row[0] for row in rows]

    async def public_rooms(self) -> list[tuple[str, str | None, int]]:
        """(room_id, room_type, joined member count) of every room published in the
        directory, oldest first (the order the draft API's public room list pages by)."""
        rows = await self.db.fetchall(
            "SELECT r.room_id, r.room_type, COUNT(m.user_id) FROM rooms r "
            "LEFT JOIN memberships m ON m.room_id = r.room_id AND m.membership = 'join' "
            "WHERE r.is_public = 1 GROUP BY r.room_id, r.room_type, r.created_ts ORDER BY r.created_ts, r.room_id"
        )
        return [(row[0], row[1], int(row[2])) for row in rows]

    # -- relations -------------------------------------------------------------------------
    # Used by rooms/relations.py. A redacted event has lost its m.relates_to, so every read
    # here leaves redacted children out.

    def _cached_rows(self, raw_rows) -> list[EventRow]:
        """Rows of a query as EventRows, reusing the cached ones (and caching the rest)."""
        result = []
        for raw in raw_rows:
            cached = self._events.get(raw[0])
            if cached is None:
                cached = self._row(raw)
                self._remember(cached)
            result.append(cached)
        return result

    async def relation_page(
        self, room_id: str, parent_id: str, *, rel_type: str | None, event_type: str | None, max_depth: int,
        lower: tuple[int, int] | None, upper: tuple[int, int] | None, backwards: bool, limit: int,
    ) -> list[EventRow]:
        """A page of the events relating to `parent_id` directly or through up to `max_depth`
        links (each link matching the filters), in (depth, stream) order: lower <= key < upper."""
        match = "e.room_id = ? AND e.redacted_by IS NULL"
        match_params: list[Any] = [room_id]
        if rel_type is not None:
            match += " AND e.rel_type = ?"
            match_params.append(rel_type)
        if event_type is not None:
            match += " AND e.type = ?"
            match_params.append(event_type)
        bounds, params = position_bounds(lower, upper)
        conditions = ["1 = 1", *bounds]
        order = "DESC" if backwards else "ASC"
        rows = await self.db.fetchall(
            "WITH RECURSIVE related(event_id, level) AS ("
            f" SELECT e.event_id, 1 FROM events e WHERE e.relates_to = ? AND {match}"
            " UNION ALL"
            " SELECT e.event_id, related.level + 1 FROM related JOIN events e ON e.relates_to = related.event_id"
            f" WHERE related.level < ? AND {match}"
            f") SELECT {_EVENT_COLUMNS} FROM related JOIN events e ON e.event_id = related.event_id "
            f"JOIN rooms r ON r.room_id = e.room_id WHERE {' AND '.join(conditions)} "
            f"ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT ?",
            parent_id, *match_params, max_depth, *match_params, *params, limit,
        )
        return self._cached_rows(rows)

    async def relation_children(self, parent_ids: list[str],
                                rel_types: tuple[str, ...]) -> list[tuple[str, str, EventRow]]:
        """(parent ID, rel_type, child) of every child of the given events with one of the
        relation types, oldest first."""
        result: list[tuple[str, str, EventRow]] = []
        for start in range(0, len(parent_ids), 500):
            chunk = parent_ids[start:start + 500]
            rows = await self.db.fetchall(
                f"SELECT e.relates_to, e.rel_type, {_EVENT_COLUMNS} FROM events e "
                "JOIN rooms r ON r.room_id = e.room_id "
                f"WHERE e.relates_to IN ({', '.join('?' * len(chunk))}) "
                f"AND e.rel_type IN ({', '.join('?' * len(rel_types))}) AND e.redacted_by IS NULL "
                "ORDER BY e.depth, e.stream_ordering",
                *chunk, *rel_types,
            )
            children = self._cached_rows([raw[2:] for raw in rows])
            result += [(raw[0], raw[1], child) for raw, child in zip(rows, children)]
        return result

    async def relation_target(self, queries: Queries, event_id: str) -> tuple[str, str, str | None] | None:
        """(room_id, sender, rel_type) of an event, read with `queries` (a transaction, to see its writes)."""
        row = await queries.fetchone("SELECT room_id, sender, rel_type FROM events WHERE event_id = ?", event_id)
        return (row[0], row[1], row[2]) if row else None

    async def relation_parent(self, queries: Queries, event_id: str, rel_type: str) -> str | None:
        """The event that `event_id` relates to with `rel_type`, if it does."""
        return await queries.fetchval(
            "SELECT relates_to FROM events WHERE event_id = ? AND rel_type = ?", event_id, rel_type
        )

    async def latest_relation(self, queries: Queries, parent_id: str, rel_type: str, *,
                              excluding: str) -> tuple[str, int] | None:
        """(event_id, stream) of the topologically latest unredacted child other than `excluding`."""
        row = await queries.fetchone(
            "SELECT event_id, stream_ordering FROM events WHERE relates_to = ? AND rel_type = ? "
            "AND redacted_by IS NULL AND event_id <> ? ORDER BY depth DESC, stream_ordering DESC LIMIT 1",
            parent_id, rel_type, excluding,
        )
        return (row[0], row[1]) if row else None


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


def _new_room_statements(room: NewRoom, items: list[PersistedEvent]) -> list[Statement]:
    return [
        Statement(
            "INSERT INTO rooms (room_id, room_version, creator, created_ts, is_public, room_type, "
            "current_state_group, last_event_id, last_depth) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (room.room_id, room.room_version, room.creator, room.created_ts, int(room.is_public), room.room_type,
             items[0].state_group_before, items[0].event.event_id, items[0].event.depth),
        ),
        Statement("INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?)",
                  [(alias, room.room_id, room.creator) for alias in room.aliases], many=True),
    ]


def _state_statements(item: PersistedEvent) -> list[Statement]:
    """A state event's new state group, current state row and membership rows."""
    group = item.new_state_group
    if group is None:
        return []
    event = item.event
    statements = [
        Statement("INSERT INTO state_groups (state_group, room_id, prev_group, chain_length) VALUES (?, ?, ?, ?)",
                  (group.state_group, event.room_id, group.prev_group, group.chain_length)),
        Statement("INSERT INTO state_group_entries (state_group, type, state_key, event_id) VALUES (?, ?, ?, ?)",
                  [(group.state_group, t, sk, eid) for (t, sk), eid in group.entries.items()], many=True),
        Statement("INSERT INTO current_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?) "
                  "ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
                  (event.room_id, event.type, event.state_key, event.event_id)),
    ]
    membership = event.membership
    if membership is not None:
        statements += [
            Statement("INSERT INTO memberships (room_id, user_id, membership, event_id, stream_ordering, forgotten) "
                      "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (room_id, user_id) DO UPDATE SET "
                      "membership = excluded.membership, event_id = excluded.event_id, "
                      "stream_ordering = excluded.stream_ordering, forgotten = 0",
                      (event.room_id, event.state_key, membership, event.event_id, item.stream_ordering)),
            Statement("INSERT INTO membership_history (room_id, user_id, stream_ordering, membership) "
                      "VALUES (?, ?, ?, ?)", (event.room_id, event.state_key, item.stream_ordering, membership)),
        ]
    return statements


def _group_hook_data(items: list[PersistedEvent]) -> dict[PersistHook, list[tuple[PersistedEvent, Any]]]:
    grouped: dict[PersistHook, list[tuple[PersistedEvent, Any]]] = {}
    for item in items:
        for hook, prepared in item.hook_data:
            if prepared is not None:
                grouped.setdefault(hook, []).append((item, prepared))
    return grouped


class SyncQueries:
    """The room reads /sync needs: everything bounded by stream positions, so their cost
    follows what changed since a token, not the size of history."""

    def __init__(self, store: RoomStore) -> None:
        self.store = store
        self.db = store.db

    async def last_stream_per_room(self) -> dict[str, int]:
        rows = await self.db.fetchall("SELECT room_id, MAX(stream_ordering) FROM events GROUP BY room_id")
        return {room_id: stream for room_id, stream in rows}

    async def recent_events(self, room_id: str, *, since: int, upto: int, limit: int) -> list[EventRow]:
        """The newest `limit` events with since < stream <= upto, oldest first."""
        in_memory = self.store.recent_rows(room_id, since, upto, limit)
        if in_memory is not None:
            return in_memory
        rows = await self.db.fetchall(
            f"SELECT {_EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
            "WHERE e.room_id = ? AND e.stream_ordering > ? AND e.stream_ordering <= ? "
            "ORDER BY e.stream_ordering DESC LIMIT ?",
            room_id, since, upto, limit,
        )
        return self.store._cached_rows(reversed(rows))

    async def recent_events_of(self, windows: list[tuple[str, int, int, int]]) -> dict[str, list[EventRow]]:
        """`recent_events` of many rooms, each (room_id, since, upto, limit): from memory
        where the recent buffer tells, else one query per 200 rooms (a UNION ALL of one
        indexed, limited read per room: its cost follows the limits, not history)."""
        found: dict[str, list[EventRow]] = {}
        asked = []
        for room_id, since, upto, limit in windows:
            in_memory = self.store.recent_rows(room_id, since, upto, limit)
            if in_memory is not None:
                found[room_id] = in_memory
            else:
                found[room_id] = []
                asked.append((room_id, since, upto, limit))
        for chunk in _chunks(asked, 200):
            branch = (f"SELECT {_EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
                      "WHERE e.room_id = ? AND e.stream_ordering > ? AND e.stream_ordering <= ? "
                      "ORDER BY e.stream_ordering DESC LIMIT ?")
            sql = " UNION ALL ".join(f"SELECT * FROM ({branch}) AS b{i}" for i in range(len(chunk)))
            rows = await self.db.fetchall(sql, *(value for window in chunk for value in window))
            for row in sorted(self.store._cached_rows(rows), key=lambda row: row.stream_ordering):
                found[row.event.room_id].append(row)
        return found

    async def stream_events(self, room_ids: list[str], *, since: int, upto: int, limit: int) -> list[EventRow]:
        """The first `limit` events of these rooms with since < stream <= upto, in stream order."""
        found: list[EventRow] = []
        for start in range(0, len(room_ids), 500):
            chunk = room_ids[start:start + 500]
            rows = await self.db.fetchall(
                f"SELECT {_EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
                f"WHERE e.room_id IN ({', '.join('?' * len(chunk))}) AND e.stream_ordering > ? "
                "AND e.stream_ordering <= ? ORDER BY e.stream_ordering LIMIT ?",
                *chunk, since, upto, limit,
            )
            found += self.store._cached_rows(rows)
        found.sort(key=lambda row: row.stream_ordering)
        return found[:limit]

    async def stream_page(self, room_bounds: dict[str, int], *, after: int, backwards: bool,
                          limit: int) -> list[EventRow]:
        """Up to `limit` events with stream > after, of each room up to its own bound
        (inclusive), in stream order (newest first when backwards): the draft API's event
        stream across a user's rooms, where a room they left counts up to their leave."""
        by_bound: dict[int, list[str]] = {}
        for room_id, bound in room_bounds.items():
            if bound > after:
                by_bound.setdefault(bound, []).append(room_id)
        statements: list[tuple[list[str], list[Any]]] = [([], [])]
        for bound, room_ids in by_bound.items():
            for start in range(0, len(room_ids), 500):
                chunk = room_ids[start:start + 500]
                if len(statements[-1][1]) + len(chunk) > 1000:
                    statements.append(([], []))
                statements[-1][0].append(f"(e.room_id IN ({', '.join('?' * len(chunk))}) AND e.stream_ordering <= ?)")
                statements[-1][1].extend([*chunk, bound])
        order = "DESC" if backwards else "ASC"
        rows: list[EventRow] = []
        for conditions, params in statements:
            if conditions:
                rows += self.store._cached_rows(await self.db.fetchall(
                    f"SELECT {_EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
                    f"WHERE e.stream_ordering > ? AND ({' OR '.join(conditions)}) "
                    f"ORDER BY e.stream_ordering {order} LIMIT ?",
                    after, *params, limit,
                ))
        rows.sort(key=lambda row: row.stream_ordering, reverse=backwards)
        return rows[:limit]

    async def state_changes(self, room_id: str, *, since: int, before: int) -> dict[StateKey, str]:
        """The last state event per key with since < stream < before: the state delta."""
        rows = await self.db.fetchall(
            "SELECT type, state_key, event_id FROM events WHERE room_id = ? AND state_key IS NOT NULL "
            "AND stream_ordering > ? AND stream_ordering < ? ORDER BY stream_ordering",
            room_id, since, before,
        )
        return {(t, sk): eid for t, sk, eid in rows}

    async def membership_changes(self, user_id: str, *, since: int, upto: int) -> list[tuple[str, int, str]]:
        """(room_id, stream, membership) of the user's membership events in (since, upto]."""
        rows = await self.db.fetchall(
            "SELECT room_id, stream_ordering, membership FROM membership_history "
            "WHERE user_id = ? AND stream_ordering > ? AND stream_ordering <= ? ORDER BY stream_ordering",
            user_id, since, upto,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def room_membership_changes(self, room_ids: list[str], *, since: int, upto: int) -> list[tuple[str, str, str]]:
        """(room_id, user_id, membership) of the rooms' membership events in (since, upto], in order."""
        changes: list[tuple[str, str, str]] = []
        for start in range(0, len(room_ids), 500):
            chunk = room_ids[start:start + 500]
            rows = await self.db.fetchall(
                "SELECT e.room_id, h.user_id, h.membership FROM events e JOIN membership_history h "
                "ON h.room_id = e.room_id AND h.user_id = e.state_key AND h.stream_ordering = e.stream_ordering "
                f"WHERE e.room_id IN ({', '.join('?' * len(chunk))}) AND e.stream_ordering > ? "
                "AND e.stream_ordering <= ? AND e.type = 'm.room.member' ORDER BY e.stream_ordering",
                *chunk, since, upto,
            )
            changes += [(r[0], r[1], r[2]) for r in rows]
        return changes

    async def membership_histories(self, user_id: str, room_ids: list[str]) -> dict[str, list[tuple[int, str]]]:
        histories: dict[str, list[tuple[int, str]]] = {room_id: [] for room_id in room_ids}
        for start in range(0, len(room_ids), 500):
            chunk = room_ids[start:start + 500]
            rows = await self.db.fetchall(
                f"SELECT room_id, stream_ordering, membership FROM membership_history WHERE user_id = ? "
                f"AND room_id IN ({', '.join('?' * len(chunk))}) ORDER BY stream_ordering",
                user_id, *chunk,
            )
            for room_id, stream, membership in rows:
                histories[room_id].append((stream, membership))
        return histories

    async def recent_events_of_rooms(self, windows: list[tuple[str, int, int, int]]) -> dict[str, list[EventRow]]:
        """For each (room_id, since, upto, limit): the newest `limit` events with since < stream
        <= upto, oldest first. From memory where the recent buffer covers the window, the rest
        in one statement per 50 rooms (each part an index range scan that stops at its limit)."""
        result: dict[str, list[EventRow]] = {}
        missing = []
        for room_id, since, upto, limit in windows:
            rows = self.store.recent_rows(room_id, since, upto, limit) if limit else []
            if rows is None:
                missing.append((room_id, since, upto, limit))
            else:
                result[room_id] = rows
        for start in range(0, len(missing), 50):
            chunk = missing[start:start + 50]
            parts = [f"SELECT * FROM (SELECT {_EVENT_COLUMNS}, e.room_id AS in_room FROM events e "
                     "JOIN rooms r ON r.room_id = e.room_id WHERE e.room_id = ? AND e.stream_ordering > ? "
                     f"AND e.stream_ordering <= ? ORDER BY e.stream_ordering DESC LIMIT ?) AS w{i}"
                     for i in range(len(chunk))]
            rows = await self.db.fetchall(" UNION ALL ".join(parts), *(p for window in chunk for p in window))
            by_room: dict[str, list] = {window[0]: [] for window in chunk}
            for raw in rows:
                by_room[raw[-1]].append(raw[:-1])
            for room_id, raws in by_room.items():
                raws.sort(key=lambda raw: raw[3])
                result[room_id] = self.store._cached_rows(raws)
        return result

    async def latest_of_types(self, room_ids: list[str], types: tuple[str, ...]) -> dict[str, int]:
        """room_id -> stream position of the room's newest event of one of `types`, in one
        statement per 50 rooms (each part walks the room's index backwards to its first match)."""
        found: dict[str, int] = {}
        type_marks = ", ".join("?" * len(types))
        for start in range(0, len(room_ids), 50):
            chunk = room_ids[start:start + 50]
            parts = [f"SELECT * FROM (SELECT room_id, stream_ordering FROM events WHERE room_id = ? "
                     f"AND type IN ({type_marks}) ORDER BY stream_ordering DESC LIMIT 1) AS b{i}"
                     for i in range(len(chunk))]
            rows = await self.db.fetchall(" UNION ALL ".join(parts), *(p for room_id in chunk for p in (room_id, *types)))
            found.update({room_id: stream for room_id, stream in rows})
        return found

    async def room_kinds(self, room_ids: list[str]) -> dict[str, tuple[str | None, bool]]:
        """room_id -> (room type from its create event, whether it has an m.room.encryption
        state event), one query per 500 rooms."""
        found: dict[str, tuple[str | None, bool]] = {}
        for start in range(0, len(room_ids), 500):
            chunk = room_ids[start:start + 500]
            rows = await self.db.fetchall(
                "SELECT r.room_id, r.room_type, c.event_id FROM rooms r LEFT JOIN current_state c "
                "ON c.room_id = r.room_id AND c.type = 'm.room.encryption' AND c.state_key = '' "
                f"WHERE r.room_id IN ({', '.join('?' * len(chunk))})",
                *chunk,
            )
            found.update({room_id: (room_type, event_id is not None) for room_id, room_type, event_id in rows})
        return found

    async def departures(self, user_id: str) -> dict[str, tuple[int, str, str, bool]]:
        """room_id -> (stream, event ID, sender, ever joined) of each of the user's leave and
        ban memberships not forgotten: who made them leave, and whether they had been in the
        room, in one query."""
        rows = await self.db.fetchall(
            "SELECT m.room_id, m.stream_ordering, m.event_id, e.sender, EXISTS (SELECT 1 FROM membership_history h "
            "WHERE h.room_id = m.room_id AND h.user_id = m.user_id AND h.membership = 'join') "
            "FROM memberships m JOIN events e ON e.event_id = m.event_id "
            "WHERE m.user_id = ? AND m.forgotten = 0 AND m.membership IN ('leave', 'ban')",
            user_id,
        )
        return {r[0]: (r[1], r[2], r[3], bool(r[4])) for r in rows}

    async def current_memberships(self, user_id: str) -> dict[str, tuple[str, int]]:
        """room_id -> (membership, stream) of the user's latest membership in every room not forgotten."""
        rows = await self.db.fetchall(
            "SELECT room_id, membership, stream_ordering FROM memberships WHERE user_id = ? AND forgotten = 0",
            user_id,
        )
        return {r[0]: (r[1], r[2]) for r in rows}


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
