"""The SQL of the room graph: auth chains, children, backward extremities, and the walks
behind /backfill and /get_missing_events. Every walk is one recursive query bounded by
depth, never one query per event.
"""

from __future__ import annotations

from ranvier.events.model import Event
from ranvier.rooms.store import RoomStore, in_clause
from ranvier.storage.engine import any_of


class GraphQueries:
    def __init__(self, store: RoomStore) -> None:
        self.store = store
        self.db = store.db

    async def auth_chain_ids(self, event_ids: list[str]) -> set[str]:
        """Every event reachable from these through auth edges, these not included unless
        reachable. Auth edges are stored for state events, the only ones an auth chain
        passes through; for any event, its chain is its auth events and their chains
        (`auth_chain_of`)."""
        if not event_ids:
            return set()
        condition, ids = any_of(self.db, event_ids)
        rows = await self.db.fetchall(
            "WITH RECURSIVE chain(event_id) AS ("
            f" SELECT auth_id FROM event_auth WHERE event_id {condition}"
            " UNION SELECT a.auth_id FROM event_auth a JOIN chain c ON a.event_id = c.event_id"
            ") SELECT event_id FROM chain",
            ids,
        )
        return {row[0] for row in rows}

    async def auth_chain_of(self, events: list[Event]) -> set[str]:
        """The union of the events' auth chains: their auth events, and all those lead to."""
        direct = list({auth_id for event in events for auth_id in event.auth_event_ids})
        return set(direct) | await self.auth_chain_ids(direct)

    async def awaited(self, event_ids: list[str], room_id: str) -> set[str]:
        """Those of the events that stored events named as prev events before this server
        had them (the room's backward extremities): they have children already."""
        if not event_ids:
            return set()
        rows = await self.db.fetchall(
            f"SELECT event_id FROM backward_extremities WHERE room_id = ? AND event_id IN ({in_clause(len(event_ids))})",
            room_id, *event_ids,
        )
        return {row[0] for row in rows}

    async def backward_extremities(self, room_id: str) -> list[tuple[str, int]]:
        """(event_id, depth of its deepest known child) of the events the room's known
        history starts from but which this server does not have, deepest first."""
        rows = await self.db.fetchall(
            "SELECT event_id, depth FROM backward_extremities WHERE room_id = ? ORDER BY depth DESC, event_id",
            room_id,
        )
        return [(row[0], row[1]) for row in rows]

    async def backfill_ids(self, room_id: str, from_ids: list[str], limit: int) -> list[str]:
        """The events `from_ids` and those before them in the room's graph, the deepest
        `limit` of them, deepest first (the /backfill walk). Outliers and rejected events
        are not part of the graph a server hands out."""
        if not from_ids:
            return []
        top = await self.db.fetchval(
            f"SELECT MAX(depth) FROM events WHERE room_id = ? AND event_id IN ({in_clause(len(from_ids))})",
            room_id, *from_ids,
        )
        if top is None:
            return []
        rows = await self.db.fetchall(
            "WITH RECURSIVE walk(event_id, depth) AS ("
            f" SELECT event_id, depth FROM events WHERE room_id = ? AND event_id IN ({in_clause(len(from_ids))})"
            " UNION SELECT e.event_id, e.depth FROM walk w JOIN event_edges g ON g.event_id = w.event_id"
            " JOIN events e ON e.event_id = g.prev_event_id WHERE e.depth >= ?"
            ") SELECT w.event_id FROM walk w JOIN events e ON e.event_id = w.event_id "
            "WHERE e.outlier = 0 AND e.rejected_reason IS NULL ORDER BY w.depth DESC, e.stream_ordering DESC LIMIT ?",
            room_id, *from_ids, top - limit, limit,
        )
        return [row[0] for row in rows]

    async def missing_ids(self, room_id: str, earliest: list[str], latest: list[str], limit: int,
                          min_depth: int) -> list[str]:
        """The events before `latest` (not included) back to `earliest` (not included, nor
        what precedes them), at `min_depth` or deeper: what a server that has `earliest`
        lacks to connect `latest` (the /get_missing_events walk); oldest first."""
        if not latest:
            return []
        stop = set(earliest)
        rows = await self.db.fetchall(
            "WITH RECURSIVE walk(event_id, depth) AS ("
            f" SELECT g.prev_event_id, e.depth FROM event_edges g JOIN events e ON e.event_id = g.prev_event_id"
            f" WHERE g.event_id IN ({in_clause(len(latest))}) AND e.depth >= ?"
            " UNION SELECT e.event_id, e.depth FROM walk w JOIN event_edges g ON g.event_id = w.event_id"
            " JOIN events e ON e.event_id = g.prev_event_id WHERE e.depth >= ?"
            f" AND w.event_id NOT IN ({in_clause(len(stop)) if stop else 'NULL'})"
            ") SELECT w.event_id FROM walk w JOIN events e ON e.event_id = w.event_id "
            "WHERE e.room_id = ? AND e.outlier = 0 AND e.rejected_reason IS NULL "
            "ORDER BY w.depth DESC, e.stream_ordering DESC",
            *latest, min_depth, min_depth, *stop, room_id,
        )
        found = [row[0] for row in rows if row[0] not in stop]
        return found[:limit][::-1]
