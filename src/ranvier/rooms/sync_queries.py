"""The room reads /sync needs: everything bounded by stream positions, so their cost
follows what changed since a token, not the size of history. Only positive positions are
ever reported: backfilled history, outliers and rejected events sit below zero.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from ranvier.events.model import Event
from ranvier.rooms.store import EVENT_COLUMNS, EventRow, RoomStore, StateKey, in_clause
from ranvier.storage.engine import any_of

#: Rooms whose newest events one statement reads: its raw rows become events before the
#: next statement runs, so a sync of many rooms never holds all of them raw.
_WINDOWS_PER_STATEMENT = 1000


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
            f"SELECT {EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
            "WHERE e.room_id = ? AND e.stream_ordering > ? AND e.stream_ordering <= ? "
            "ORDER BY e.stream_ordering DESC LIMIT ?",
            room_id, since, upto, limit,
        )
        return self.store.cached_rows(reversed(rows))

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
                statements[-1][0].append(f"(e.room_id IN ({in_clause(len(chunk))}) AND e.stream_ordering <= ?)")
                statements[-1][1].extend([*chunk, bound])
        order = "DESC" if backwards else "ASC"
        rows: list[EventRow] = []
        for conditions, params in statements:
            if conditions:
                rows += self.store.cached_rows(await self.db.fetchall(
                    f"SELECT {EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
                    f"WHERE e.stream_ordering > ? AND e.stream_ordering > 0 AND ({' OR '.join(conditions)}) "
                    f"ORDER BY e.stream_ordering {order} LIMIT ?",
                    after, *params, limit,
                ))
        rows.sort(key=lambda row: row.stream_ordering, reverse=backwards)
        return rows[:limit]

    async def events_between(self, *, after: int, upto: int, limit: int) -> list[EventRow]:
        """Up to `limit` events of every room with after < stream <= upto, in stream order
        (positive positions only: what /sync reports); read rows do not enter the event
        cache, which a scan of everything would empty."""
        rows = await self.db.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id "
            "WHERE e.stream_ordering > ? AND e.stream_ordering <= ? ORDER BY e.stream_ordering LIMIT ?",
            max(after, 0), upto, limit,
        )
        return self.store.cached_rows(rows, cache=False)

    async def state_changes(self, room_id: str, *, since: int, before: int) -> dict[StateKey, str]:
        """The room's current state entries that changed with since < stream < before,
        each as it was last set: the state delta (a resolution of the room's branches
        changes the current state too, not only the state events that arrive)."""
        rows = await self.db.fetchall(
            "SELECT type, state_key, event_id FROM current_state_deltas WHERE room_id = ? "
            "AND stream_ordering > ? AND stream_ordering < ? ORDER BY stream_ordering",
            room_id, since, before,
        )
        return {(t, sk): eid for t, sk, eid in rows if eid is not None}

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
        if not room_ids:
            return []
        condition, ids = any_of(self.db, room_ids)
        rows = await self.db.fetchall(
            "SELECT e.room_id, h.user_id, h.membership FROM events e JOIN membership_history h "
            "ON h.room_id = e.room_id AND h.user_id = e.state_key AND h.stream_ordering = e.stream_ordering "
            f"WHERE e.room_id {condition} AND e.stream_ordering > ? "
            "AND e.stream_ordering <= ? AND e.type = 'm.room.member' ORDER BY e.stream_ordering",
            ids, since, upto,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def membership_histories(self, user_id: str, room_ids: list[str]) -> dict[str, list[tuple[int, str]]]:
        """room_id -> the user's (stream, membership) changes there, oldest first, in one
        statement: the rooms as one array parameter on PostgreSQL (which plans a long IN
        list for longer than it runs it), as one JSON array on SQLite, walked first (a
        CROSS JOIN fixes that order), each room then a lookup in the primary key. SQLite
        would otherwise answer `room_id IN (...)` by scanning all the user's history for
        every statement: quadratic in the rooms of a user in thousands."""
        histories: dict[str, list[tuple[int, str]]] = {room_id: [] for room_id in room_ids}
        if not room_ids:
            return histories
        if self.db.dialect == "postgresql":
            rows = await self.db.fetchall(
                "SELECT room_id, stream_ordering, membership FROM membership_history "
                "WHERE user_id = ? AND room_id = ANY(?::text[]) ORDER BY stream_ordering", user_id, room_ids)
        else:
            rows = await self.db.fetchall(
                "SELECT m.room_id, m.stream_ordering, m.membership FROM json_each(?) AS wanted "
                "CROSS JOIN membership_history m ON m.room_id = wanted.value AND m.user_id = ? "
                "ORDER BY m.stream_ordering", orjson.dumps(list(histories)).decode(), user_id)
        for room_id, stream, membership in rows:
            histories[room_id].append((stream, membership))
        return histories

    async def recent_events_of_rooms(self, windows: list[tuple[str, int, int, int]],
                                     states: Mapping[str, Mapping[StateKey, Event]] | None = None
                                     ) -> dict[str, list[EventRow]]:
        """For each (room_id, since, upto, limit): the newest `limit` events with since < stream
        <= upto, oldest first. From memory where the recent buffer covers the window, the rest
        in one statement per 1,000 rooms (`_recent_rows_of_windows`). What is read goes into the event cache
        only if it is a small part of it (a sync of many rooms would evict it all); a state
        event found in its room's state as the caller holds it parsed (`states`: room_id ->
        state, the rooms' heads) is taken from there rather than parsed again."""
        result: dict[str, list[EventRow]] = {}
        missing = []
        for room_id, since, upto, limit in windows:
            rows = self.store.recent_rows(room_id, since, upto, limit) if limit else []
            if rows is None:
                missing.append((room_id, max(since, 0), upto, limit))
            else:
                result[room_id] = rows
        cache = self.store.worth_caching(sum(window[3] for window in missing))
        for start in range(0, len(missing), _WINDOWS_PER_STATEMENT):
            chunk = missing[start:start + _WINDOWS_PER_STATEMENT]
            by_room: dict[str, list] = {window[0]: [] for window in chunk}
            for raw in await self._recent_rows_of_windows(chunk):
                by_room[raw[-3]].append(raw)
            for room_id, raws in by_room.items():
                raws.sort(key=lambda raw: raw[3])
                state = states.get(room_id) if states else None
                known = None
                if state:
                    known = {raw[0]: event for raw in raws if raw[-1] is not None
                             and (event := state.get((raw[-2], raw[-1]))) is not None and event.event_id == raw[0]}
                result[room_id] = self.store.cached_rows((raw[:-3] for raw in raws), known, cache=cache)
        return result

    async def _recent_rows_of_windows(self, windows: list[tuple[str, int, int, int]]) -> list:
        """The raw rows of `recent_events_of_rooms` for these windows, each row ending with
        its room, type and state key: each window one index range scan that stops at its
        limit, whatever their number in one statement of the same text. PostgreSQL takes
        the windows as arrays, one LATERAL scan each (a UNION ALL of many parts cost it
        more to plan than to run); SQLite, which has no LATERAL, walks them as a JSON array
        with a correlated `IN` subquery per window, one statement per distinct limit (a
        sync's windows share theirs): a UNION ALL of 50 parts was a prepared statement of
        about 200 KiB in every reader."""
        columns = f"{EVENT_COLUMNS}, e.room_id AS in_room, e.type AS of_type, e.state_key AS with_key"
        if self.db.dialect == "postgresql":
            room_ids, sinces, uptos, limits = (list(column) for column in zip(*windows))
            return await self.db.fetchall(
                "SELECT x.* FROM unnest(?::text[], ?::bigint[], ?::bigint[], ?::int[]) AS w(room_id, since, upto, n) "
                f"CROSS JOIN LATERAL (SELECT {columns} FROM events e JOIN rooms r ON r.room_id = e.room_id "
                "WHERE e.room_id = w.room_id AND e.stream_ordering > w.since "
                "AND e.stream_ordering <= w.upto ORDER BY e.stream_ordering DESC LIMIT w.n) AS x",
                room_ids, sinces, uptos, limits)
        by_limit: dict[int, list[tuple[str, int, int]]] = {}
        for room_id, since, upto, limit in windows:
            by_limit.setdefault(limit, []).append((room_id, since, upto))
        rows = []
        for limit, bounds in by_limit.items():
            rows += await self.db.fetchall(
                f"SELECT {columns} FROM json_each(?) AS w, events e, rooms r WHERE e.stream_ordering IN "
                "(SELECT x.stream_ordering FROM events x WHERE x.room_id = json_extract(w.value, '$[0]') "
                "AND x.stream_ordering > json_extract(w.value, '$[1]') "
                "AND x.stream_ordering <= json_extract(w.value, '$[2]') ORDER BY x.stream_ordering DESC LIMIT ?) "
                "AND r.room_id = e.room_id", orjson.dumps(bounds).decode(), limit)
        return rows

    async def latest_of_types(self, room_ids: list[str], types: tuple[str, ...]) -> dict[str, int]:
        """room_id -> stream position of the room's newest event of one of `types` that /sync
        reported, in one statement per 50 rooms (each part walks the room's index backwards
        to its first match)."""
        found: dict[str, int] = {}
        type_marks = in_clause(len(types))
        for start in range(0, len(room_ids), 50):
            chunk = room_ids[start:start + 50]
            parts = [f"SELECT * FROM (SELECT room_id, stream_ordering FROM events WHERE room_id = ? "
                     f"AND type IN ({type_marks}) AND stream_ordering > 0 ORDER BY stream_ordering DESC LIMIT 1) AS b{i}"
                     for i in range(len(chunk))]
            rows = await self.db.fetchall(" UNION ALL ".join(parts), *(p for room_id in chunk for p in (room_id, *types)))
            found.update({room_id: stream for room_id, stream in rows})
        return found

    async def room_kinds(self, room_ids: list[str]) -> dict[str, tuple[str | None, bool]]:
        """room_id -> (room type from its create event, whether it has an m.room.encryption
        state event), in one query."""
        if not room_ids:
            return {}
        condition, ids = any_of(self.db, room_ids)
        rows = await self.db.fetchall(
            "SELECT r.room_id, r.room_type, c.event_id FROM rooms r LEFT JOIN current_state c "
            "ON c.room_id = r.room_id AND c.type = 'm.room.encryption' AND c.state_key = '' "
            f"WHERE r.room_id {condition}",
            ids,
        )
        return {room_id: (room_type, event_id is not None) for room_id, room_type, event_id in rows}

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
