"""Read receipts (m.read, m.read.private, threaded or not) and the m.fully_read marker.

A receipt only moves forward: one that points at an event earlier in the room's stream
than the stored one for the same (user, room, type, thread) is acknowledged and ignored.
Private receipts are only ever shown to their owner.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Iterable

from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of
from ranvier.rooms.service import RoomServer
from ranvier.rooms.store import EventRow
from ranvier.notify.notifier import Notifier
from ranvier.sync.receipts_store import Receipt, ReceiptStore
from ranvier.notify.streams import StreamPositions
from ranvier.users.account_data import AccountData

READ, READ_PRIVATE, FULLY_READ = "m.read", "m.read.private", "m.fully_read"
RECEIPT_TYPES = (READ, READ_PRIVATE, FULLY_READ)
MAIN_THREAD = "main"


def thread_of(row: EventRow) -> str:
    """The thread an event belongs to: its thread root's ID, or "main"."""
    relation = row.event.content.get("m.relates_to")
    if isinstance(relation, dict) and relation.get("rel_type") == "m.thread" and isinstance(relation.get("event_id"), str):
        return relation["event_id"]
    return MAIN_THREAD


class Receipts:
    def __init__(self, store: ReceiptStore, rooms: RoomServer, account_data: AccountData, notifier: Notifier,
                 push: Callable[[], Any]) -> None:
        self.store = store
        self.rooms = rooms
        self.account_data = account_data
        self.notifier = notifier
        #: Returns the push service if the server has one (it clears notification counts).
        self._push = push
        self.positions = StreamPositions(0)
        #: Told of each public read receipt of a local user that moved (other servers in the
        #: room are sent it): listener(room_id, user_id, type, event_id, thread_id, ts).
        self.local_listeners: list[Callable[[str, str, str, str, str | None, int], Awaitable[None]]] = []

    async def start(self) -> None:
        self.positions = StreamPositions(await self.store.max_stream_id())

    @property
    def position(self) -> int:
        return self.positions.current

    # -- writing -------------------------------------------------------------------------

    async def send(self, user_id: str, room_id: str, receipt_type: str, event_id: str, thread_id: str | None) -> None:
        """POST /receipt: a read receipt, or the fully-read marker for m.fully_read."""
        if receipt_type not in RECEIPT_TYPES:
            raise MatrixError("M_INVALID_PARAM", f"Receipt type must be one of {', '.join(RECEIPT_TYPES)}")
        if thread_id is not None and receipt_type == FULLY_READ:
            raise MatrixError("M_INVALID_PARAM", "m.fully_read cannot have a thread_id")
        rows = await self._events_in_room(user_id, room_id, [event_id])
        if receipt_type == FULLY_READ:
            await self._mark_fully_read(user_id, room_id, rows[event_id])
        else:
            await self._receipt(user_id, room_id, receipt_type, rows[event_id], thread_id)

    async def set_read_markers(self, user_id: str, room_id: str, markers: dict[str, str]) -> None:
        """POST /read_markers: {receipt type: event ID}; every event is checked before anything changes."""
        rows = await self._events_in_room(user_id, room_id, markers.values())
        for receipt_type, event_id in markers.items():
            if receipt_type == FULLY_READ:
                await self._mark_fully_read(user_id, room_id, rows[event_id])
            else:
                await self._receipt(user_id, room_id, receipt_type, rows[event_id], None)

    async def _events_in_room(self, user_id: str, room_id: str, event_ids: Iterable[str]) -> dict[str, EventRow]:
        head = await self.rooms.head(room_id)
        if user_id not in head.joined:
            raise MatrixError("M_FORBIDDEN", "You are not joined to this room")
        wanted = list(event_ids)
        rows = await self.rooms.store.get_event_rows(wanted)
        for event_id in wanted:
            row = rows.get(event_id)
            if row is None or row.event.room_id != room_id:
                raise MatrixError("M_NOT_FOUND", f"Unknown event {event_id} in this room")
        return rows

    async def _receipt(self, user_id: str, room_id: str, receipt_type: str, row: EventRow,
                       thread_id: str | None) -> None:
        if thread_id is not None:
            if not thread_id:
                raise MatrixError("M_INVALID_PARAM", "thread_id must be a non-empty string")
            in_thread = thread_of(row)
            if thread_id != in_thread and not (thread_id == row.event.event_id and in_thread == MAIN_THREAD):
                raise MatrixError("M_INVALID_PARAM", f"The event is not in thread {thread_id}")
        position = self.positions.allocate()
        ts = int(time.time() * 1000)
        try:
            moved = await self.store.advance(Receipt(
                room_id, receipt_type, user_id, thread_id or "", row.event.event_id, row.stream_ordering, ts, position,
            ))
            push = self._push()
            if moved and push is not None:
                # The counts change before the receipt's position is reached: a sync that
                # sees the receipt (woken by anything, such as the fully-read marker sent
                # with it) sees the counts it cleared, and none moves past it with the old.
                await push.mark_read(user_id, room_id, row.stream_ordering, thread_id)
        finally:
            self.positions.finish(position)
        if not moved:
            return
        self.notifier.notify([f"user:{user_id}"] if receipt_type == READ_PRIVATE else [f"room:{room_id}"])
        if receipt_type == READ and domain_of(user_id) == self.rooms.server_name:
            for listener in self.local_listeners:
                await listener(room_id, user_id, receipt_type, row.event.event_id, thread_id, ts)

    async def receive_remote(self, user_id: str, room_id: str, receipt_type: str, event_id: str,
                             thread_id: str | None) -> None:
        """A read receipt of another server's user (its server checked they are joined); one
        for an event this server does not have is ignored."""
        row = (await self.rooms.store.get_event_rows([event_id])).get(event_id)
        if row is not None and row.event.room_id == room_id and receipt_type == READ:
            await self._receipt(user_id, room_id, receipt_type, row, thread_id)

    async def _mark_fully_read(self, user_id: str, room_id: str, row: EventRow) -> None:
        """The fully-read marker lives in room account data, and only moves forward too."""
        current = await self.account_data.store.get(user_id, room_id, FULLY_READ)
        if current is not None and isinstance(current.get("event_id"), str):
            earlier = (await self.rooms.store.get_event_rows([current["event_id"]])).get(current["event_id"])
            if earlier is not None and earlier.stream_ordering >= row.stream_ordering:
                return
        await self.account_data.put(user_id, FULLY_READ, {"event_id": row.event.event_id}, room_id)

    # -- reading -------------------------------------------------------------------------

    async def changed(self, reader: str, room_ids: Iterable[str], since: int, upto: int) -> list[Receipt]:
        """The receipts of these rooms written in (since, upto], each with its stream position;
        private ones only the reader's own."""
        return await self.store.changed(reader, room_ids, since, upto)

    async def read_receipts_at(self, room_ids: Iterable[str], event_ids: Iterable[str]) -> list[Receipt]:
        """The public read receipts that currently point at one of these events."""
        return await self.store.public_receipts_at(room_ids, event_ids)

    async def events(self, user_id: str, room_ids: Iterable[str], since: int, upto: int) -> dict[str, dict]:
        """One m.receipt event per room with the receipts written in (since, upto] (all of the
        room's current receipts when since is 0); private receipts only the reader's own."""
        events: dict[str, dict] = {}
        for receipt in await self.changed(user_id, room_ids, since, upto):
            content = events.setdefault(receipt.room_id, {"type": "m.receipt", "content": {}})["content"]
            info: dict[str, Any] = {"ts": receipt.ts}
            if receipt.thread_id:
                info["thread_id"] = receipt.thread_id
            content.setdefault(receipt.event_id, {}).setdefault(receipt.receipt_type, {})[receipt.user_id] = info
        return events
