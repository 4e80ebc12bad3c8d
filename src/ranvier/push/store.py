"""All SQL of the push service: push actions per event and member, and read positions."""

from __future__ import annotations

from typing import Sequence

from ranvier.storage.engine import Database, Transaction

#: `thread_id` of a push action in the main timeline (the spec's thread ID for it).
MAIN = "main"
#: `thread_id` of an unthreaded read position, which covers the main timeline and every thread.
UNTHREADED = ""

ActionRow = tuple[str, str, int, str, int, int, str]
"""(room_id, user_id, stream_ordering, event_id, notify, highlight, thread_id)"""

ReadRow = tuple[str, str, str, int]
"""(user_id, room_id, thread_id, stream_ordering)"""

_ADVANCE = (
    "INSERT INTO push_read_positions (user_id, room_id, thread_id, stream_ordering) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET stream_ordering = excluded.stream_ordering "
    "WHERE push_read_positions.stream_ordering < excluded.stream_ordering"
)


class PushStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    async def insert_actions(txn: Transaction, rows: Sequence[ActionRow]) -> None:
        await txn.executemany(
            "INSERT INTO event_push_actions (room_id, user_id, stream_ordering, event_id, notify, highlight, thread_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    @staticmethod
    async def advance_in(txn: Transaction, rows: Sequence[ReadRow]) -> None:
        """Move read positions forward (never back) inside a transaction."""
        await txn.executemany(_ADVANCE, rows)

    async def advance(self, row: ReadRow) -> None:
        await self.db.execute(_ADVANCE, *row)

    async def unread(self, user_id: str, room_ids: Sequence[str]) -> list[tuple[str, str, int, int]]:
        """(room_id, thread_id, notifications, highlights) of what the user has not read, in one query.

        An action is read when it is at or before the room's unthreaded read position or
        its thread's position. The main timeline is scanned from the later of the two, and
        threads (through their own index) from the unthreaded one, so a user who only ever
        reads the main timeline (as clients with threads do) costs what is unread, not the
        room's whole history. The literal 'main' lets the planners pick the partial index.
        """
        if not room_ids:
            return []
        values = ", ".join("(?)" for _ in room_ids)
        rows = await self.db.fetchall(
            f"WITH wanted(room_id) AS (VALUES {values}), "
            "starts AS (SELECT wanted.room_id, COALESCE(u.stream_ordering, 0) AS unthreaded, "
            "CASE WHEN COALESCE(m.stream_ordering, 0) > COALESCE(u.stream_ordering, 0) "
            "THEN m.stream_ordering ELSE COALESCE(u.stream_ordering, 0) END AS main_read FROM wanted "
            "LEFT JOIN push_read_positions u ON u.user_id = ? AND u.room_id = wanted.room_id AND u.thread_id = '' "
            "LEFT JOIN push_read_positions m ON m.user_id = ? AND m.room_id = wanted.room_id "
            "AND m.thread_id = 'main') "
            "SELECT a.room_id, a.thread_id, SUM(a.notify), SUM(a.highlight) FROM starts "
            "JOIN event_push_actions a ON a.user_id = ? AND a.room_id = starts.room_id "
            "AND a.stream_ordering > starts.main_read WHERE a.thread_id = 'main' "
            "GROUP BY a.room_id, a.thread_id "
            "UNION ALL "
            "SELECT a.room_id, a.thread_id, SUM(a.notify), SUM(a.highlight) FROM starts "
            "JOIN event_push_actions a ON a.user_id = ? AND a.room_id = starts.room_id "
            "AND a.stream_ordering > starts.unthreaded AND a.thread_id <> 'main' "
            "LEFT JOIN push_read_positions t ON t.user_id = a.user_id AND t.room_id = a.room_id "
            "AND t.thread_id = a.thread_id "
            "WHERE t.stream_ordering IS NULL OR a.stream_ordering > t.stream_ordering "
            "GROUP BY a.room_id, a.thread_id",
            *room_ids, user_id, user_id, user_id, user_id,
        )
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]
