"""The SQL of relations (rooms/relations.py). A redacted event has lost its m.relates_to,
so every read here leaves redacted children out; events stored without a place in the
timeline (rejected, soft-failed, outliers) are stored without their relation.
"""

from __future__ import annotations

from typing import Any

from ranvier.rooms.store import EVENT_COLUMNS, EventRow, RoomStore, in_clause, position_bounds
from ranvier.storage.engine import Queries, any_of


class RelationQueries:
    def __init__(self, store: RoomStore) -> None:
        self.store = store
        self.db = store.db

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
            f") SELECT {EVENT_COLUMNS} FROM related JOIN events e ON e.event_id = related.event_id "
            f"JOIN rooms r ON r.room_id = e.room_id WHERE {' AND '.join(conditions)} "
            f"ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT ?",
            parent_id, *match_params, max_depth, *match_params, *params, limit,
        )
        return self.store.cached_rows(rows)

    async def relation_children(self, parent_ids: list[str],
                                rel_types: tuple[str, ...]) -> list[tuple[str, str, EventRow]]:
        """(parent ID, rel_type, child) of every child of the given events with one of the
        relation types, oldest first."""
        if not parent_ids:
            return []
        condition, ids = any_of(self.db, parent_ids)
        rows = await self.db.fetchall(
            f"SELECT e.relates_to, e.rel_type, {EVENT_COLUMNS} FROM events e "
            "JOIN rooms r ON r.room_id = e.room_id "
            f"WHERE e.relates_to {condition} "
            f"AND e.rel_type IN ({in_clause(len(rel_types))}) AND e.redacted_by IS NULL "
            "ORDER BY e.depth, e.stream_ordering",
            ids, *rel_types,
        )
        children = self.store.cached_rows([raw[2:] for raw in rows])
        return [(raw[0], raw[1], child) for raw, child in zip(rows, children)]

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
