"""What the draft keeps that today's model has no place for, and the draft's feedback stream.

- Message IDs: a draft client names each message it sends (`msg_id`, unique per sender and
  room). The ID is written by a persist hook of the room server in the message's own
  transaction, so a message never exists without it.
- Feedback: delivery ("d") and read ("r") feedback per message, with the client's
  `sender_ts`, at positions of a stream of its own. A read feedback also moves today's
  read receipt (messages.py does that).
- Presence states: the draft's four states fold into today's three; the state a draft
  client chose is kept with the presence position it was set at, and holds only while
  that position is the user's latest.
- Presence lists: the users a draft client observes.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator
from weakref import WeakValueDictionary

from ranvier.events.model import Event
from ranvier.legacy_api.store import Feedback, LegacyStore
from ranvier.rooms.store import PersistedEvent
from ranvier.storage.engine import Transaction
from ranvier.notify.notifier import Notifier
from ranvier.notify.streams import StreamPositions

MESSAGE = "m.room.message"

#: (room_id, sender, msg_id) of the message the current task is sending through the draft API.
_SENDING: ContextVar[tuple[str, str, str] | None] = ContextVar("legacy_api_sending", default=None)


class DraftRecords:
    def __init__(self, store: LegacyStore, notifier: Notifier) -> None:
        self.store = store
        self.notifier = notifier
        self.feedback_positions = StreamPositions(0)
        #: One send per (room, sender) at a time, so a message ID is used once even when
        #: two devices of one user send with it together.
        self._senders: WeakValueDictionary[tuple[str, str], asyncio.Lock] = WeakValueDictionary()

    async def start(self) -> None:
        self.feedback_positions = StreamPositions(await self.store.max_feedback_stream())

    @property
    def feedback_position(self) -> int:
        return self.feedback_positions.current

    # -- message IDs ---------------------------------------------------------------------

    @asynccontextmanager
    async def claiming_msg_id(self, room_id: str, sender: str, msg_id: str) -> AsyncIterator[str | None]:
        """Yield the event already sent with this message ID, or None: then the message the
        block sends is recorded under the ID, in the message's own transaction."""
        key = (room_id, sender)
        lock = self._senders.get(key)
        if lock is None:
            lock = self._senders[key] = asyncio.Lock()
        async with lock:
            earlier = await self.store.event_of_msg_id(room_id, sender, msg_id)
            token = _SENDING.set(None if earlier else (room_id, sender, msg_id))
            try:
                yield earlier
            finally:
                _SENDING.reset(token)

    # The room server's persist hook: the message ID joins its message's transaction.

    def prepare(self, draft: Any, event: Event, item: PersistedEvent) -> str | None:
        sending = _SENDING.get()
        if sending is None or event.type != MESSAGE or (event.room_id, event.sender) != sending[:2]:
            return None
        return sending[2]

    async def write(self, txn: Transaction, prepared: list[tuple[PersistedEvent, str]]) -> None:
        await self.store.write_msg_ids(
            txn, [(item.event.event_id, item.event.room_id, item.event.sender, msg_id) for item, msg_id in prepared]
        )

    def committed(self, prepared: list[tuple[PersistedEvent, str]]) -> None:
        """Nothing to do: message IDs are read from the table."""

    # -- feedback ------------------------------------------------------------------------

    async def add_feedback(self, room_id: str, event_id: str, message_stream: int, user_id: str, kind: str,
                           sender_ts: int | None, now: int) -> bool:
        """Record a feedback at the next position of the feedback stream and wake the room's
        readers; False (and nothing written) if the user gave this kind on the message before."""
        position = self.feedback_positions.allocate()
        try:
            added = await self.store.add_feedback(
                Feedback(room_id, event_id, message_stream, user_id, kind, sender_ts, now, position)
            )
        finally:
            self.feedback_positions.finish(position)
        if added:
            self.notifier.notify([f"room:{room_id}"])
        return added
