"""The room server's tables as search results need them, read only and batched: the events
around every result of a page, and the membership events of users at given positions
(the senders' historic profiles; the searcher's leave event, for the state of rooms they
left). Each is one query for the whole page, whatever its number of results.
"""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.rooms.store import IN_TIMELINE, EventRow, position_bounds
from ranvier.storage.engine import Database
from ranvier.rooms.tokens import position_after

BEFORE, AFTER = 0, 1


@dataclass(frozen=True)
class Around:
    """Where to look for context: up to `before` events before `row` and `after` after it."""

    row: EventRow
    before: int
    after: int


class ContextQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def event_ids_around(self, anchors: list[Around]) -> list[tuple[int, int, str]]:
        """(anchor index, BEFORE or AFTER, event_id) of the events nearest each anchor in
        its room's timeline, in no particular order."""
        parts, params = [], []
        for index, anchor in enumerate(anchors):
            key = anchor.row.key
            for side, limit, lower, upper, order in ((BEFORE, anchor.before, None, key, "DESC"),
                                                     (AFTER, anchor.after, position_after(key), None, "ASC")):
                if limit <= 0:
                    continue
                bounds, bound_params = position_bounds(lower, upper)
                parts.append(
                    f"SELECT * FROM (SELECT {index} AS anchor, {side} AS side, e.event_id FROM events e "
                    f"WHERE e.room_id = ? AND {IN_TIMELINE} AND {' AND '.join(bounds)} "
                    f"ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT {int(limit)}) AS around{len(parts)}"
                )
                params += [anchor.row.event.room_id, *bound_params]
        if not parts:
            return []
        rows = await self.db.fetchall(" UNION ALL ".join(parts), *params)
        return [(row[0], row[1], row[2]) for row in rows]

    async def membership_event_ids(self, wanted: list[tuple[str, str, int]]) -> dict[tuple[str, str, int], str]:
        """(room_id, user_id, stream) -> the user's latest membership event in the room at
        or before that stream position, for each one that has one."""
        parts, params = [], []
        for index, (room_id, user_id, stream) in enumerate(wanted):
            parts.append(
                f"SELECT * FROM (SELECT {index} AS wanted, e.event_id FROM membership_history m "
                "JOIN events e ON e.stream_ordering = m.stream_ordering "
                "WHERE m.room_id = ? AND m.user_id = ? AND m.stream_ordering <= ? "
                f"ORDER BY m.stream_ordering DESC LIMIT 1) AS membership{index}"
            )
            params += [room_id, user_id, stream]
        if not parts:
            return {}
        rows = await self.db.fetchall(" UNION ALL ".join(parts), *params)
        return {wanted[row[0]]: row[1] for row in rows}
