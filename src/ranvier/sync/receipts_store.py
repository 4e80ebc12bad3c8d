"""All SQL of the receipts stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ranvier.storage.engine import Database, Transaction, any_of


@dataclass
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    #: '' for an unthreaded receipt, else "main" or a thread root's event ID.
    thread_id: str
    event_id: str
    event_stream_ordering: int
    ts: int
    stream_id: int


_COLUMNS = "room_id, receipt_type, user_id, thread_id, event_id, event_stream_ordering, ts, stream_id"


class ReceiptStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def max_stream_id(self) -> int:
        return await self.db.fetchval("SELECT COALESCE(MAX(stream_id), 0) FROM receipts")

    @staticmethod
    async def purge_room(txn: Transaction, room_id: str) -> None:
        """Purging a room (rooms.admin) takes its receipts; receipts at purged events of a
        room that stays are kept (they only mark a position)."""
        await txn.execute("DELETE FROM receipts WHERE room_id = ?", room_id)

    async def advance(self, receipt: Receipt) -> bool:
        """Store the receipt unless the stored one is at the same or a later event; True if stored."""
        changed = await self.db.execute(
            f"INSERT INTO receipts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET event_id = excluded.event_id, "
            "event_stream_ordering = excluded.event_stream_ordering, ts = excluded.ts, stream_id = excluded.stream_id "
            "WHERE receipts.event_stream_ordering < excluded.event_stream_ordering",
            receipt.room_id, receipt.receipt_type, receipt.user_id, receipt.thread_id, receipt.event_id,
            receipt.event_stream_ordering, receipt.ts, receipt.stream_id,
        )
        return changed > 0

    async def changed(self, reader: str, room_ids: Iterable[str], since: int, upto: int) -> list[Receipt]:
        """Receipts of the rooms written in (since, upto]; private ones only the reader's own."""
        rooms = list(dict.fromkeys(room_ids))
        if not rooms:
            return []
        condition, ids = any_of(self.db, rooms)
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM receipts WHERE room_id {condition} "
            "AND stream_id > ? AND stream_id <= ? AND (receipt_type <> 'm.read.private' OR user_id = ?)",
            ids, since, upto, reader,
        )
        return [Receipt(*row) for row in rows]

    async def public_receipts_at(self, room_ids: Iterable[str], event_ids: Iterable[str]) -> list[Receipt]:
        """The m.read receipts of these rooms that point at one of these events (the key's
        room and type prefix keeps it to the rooms' receipts)."""
        rooms, events = list(dict.fromkeys(room_ids)), list(dict.fromkeys(event_ids))
        if not rooms or not events:
            return []
        in_rooms, room_list = any_of(self.db, rooms)
        at_events, event_list = any_of(self.db, events)
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM receipts WHERE room_id {in_rooms} "
            f"AND receipt_type = 'm.read' AND event_id {at_events}",
            room_list, event_list,
        )
        return [Receipt(*row) for row in rows]
