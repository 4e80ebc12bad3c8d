"""Clients' sends, batched per room.

Each send waits in its room's queue (`queue_send`); one task per busy room (`_drain`)
takes what is queued, up to `SEND_BATCH` sends, a state event closing a batch (the checks
of a batch's sends are run against the head before it), and builds it as one draft: each
event follows the one before it and is checked against the state it left. The batch is
written in one transaction and announced with one wake-up; its answers go out once it is
durable, while the next batch is being built. A send the auth rules or a check refuse
fails alone; a batch whose write fails is tried again one send at a time, so that only the
send at fault fails. A transaction ID repeated inside a batch or in a later one answers
the first event.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ranvier.events.model import MEMBER, Event
from ranvier.rooms.head import Draft, RoomHead
from ranvier.rooms.writer import INVITE, PendingCommit, RoomWriter, now_ms
from ranvier.storage.engine import UniqueViolation

#: Transaction IDs remembered in memory (older ones are found in the database): a client
#: retries a send within seconds, long before 2,000 more sends (about 0.6 MiB).
_TXNS_CACHED = 1_000
#: The most queued sends of a room written in one transaction.
SEND_BATCH = 100


class RoomSending(RoomWriter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: room_id -> its clients' sends waiting for the room's writer task.
        self._queued_sends: dict[str, deque[QueuedSend]] = {}
        #: Running tasks (writers of busy rooms, announcements of their batches).
        self._send_tasks: set[asyncio.Future] = set()

    def queue_send(self, room_id: str, send: "QueuedSend") -> None:
        """Queue a send behind the room's others; its `answer` gets the event ID or the error."""
        queue = self._queued_sends.get(room_id)
        if queue is None:
            queue = self._queued_sends[room_id] = deque()
            self._run(self._drain(room_id, queue))
        queue.append(send)

    def _run(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._send_tasks.add(task)
        task.add_done_callback(self._send_tasks.discard)

    async def _drain(self, room_id: str, queue: "deque[QueuedSend]") -> None:
        """The room's writer while sends are queued: one batch after the other, in order."""
        try:
            while queue:
                sends: list[QueuedSend] = []
                while queue and len(sends) < SEND_BATCH:
                    send = queue.popleft()
                    if not send.answer.done():  # else the client went away before it was built
                        sends.append(send)
                        if send.state_key is not None:
                            break  # the checks of the batch's sends saw the state before it
                if sends:
                    await self._send_batch(room_id, sends)
        finally:
            if self._queued_sends.get(room_id) is queue:
                del self._queued_sends[room_id]
            for send in queue:
                send.answer.cancel()

    async def _send_batch(self, room_id: str, sends: "list[QueuedSend]") -> None:
        """Build the sends on the room's head as one draft and write it in one transaction;
        their answers come once it is durable (`_complete`), while the next batch is built."""
        pending: PendingCommit | None = None
        retry_alone: list[QueuedSend] = []
        async with self._lock(room_id):
            try:
                head = await self.head(room_id)
                draft = await self._draft(head)
            except BaseException as exc:  # an unknown room: every send of the batch fails alike
                for send in sends:
                    send.fail(exc)
                if isinstance(exc, Exception):
                    return
                raise
            now = now_ms()
            built: list[tuple[QueuedSend, Event]] = []
            in_batch: dict[tuple[str, str, str, str], str] = {}
            for send in sends:
                key = send.txn_key(room_id)
                earlier = (self._txns.get(key) or in_batch.get(key)) if key else None
                if earlier:
                    send.succeed(earlier)
                    continue
                try:
                    await send.check(head)
                    if send.sender in self.shadow_banned and send.hidden_when_shadow_banned():
                        # The sender hears success (the same ID for a repeated txnId); nobody sees it.
                        event = self._build(Draft(head), send.sender, send.event_type, send.content,
                                            state_key=send.state_key, now=send.timestamp or now)
                        self._remember_txn(key, event.event_id)
                        send.succeed(event.event_id)
                        continue
                    event = self._add_event(draft, send.sender, send.event_type, send.content,
                                            state_key=send.state_key, txn=send.txn, now=send.timestamp or now)
                except Exception as exc:  # this send's fault only: the draft did not take it
                    send.fail(exc)
                    continue
                built.append((send, event))
                if key:
                    in_batch[key] = event.event_id
            if not built:
                return
            try:
                pending = await self._write(await self._input.batch_from_draft(draft))
            except Exception as exc:
                if len(built) > 1:
                    retry_alone = [send for send, _ in built]
                else:
                    await self._answer_failed_write(room_id, built[0][0], exc)
            else:
                for send, event in built:
                    self._remember_txn(send.txn_key(room_id), event.event_id)
        if pending is not None:
            self._run(self._complete(room_id, pending, built))
        for send in retry_alone:
            await self._send_batch(room_id, [send])

    async def _answer_failed_write(self, room_id: str, send: "QueuedSend", exc: Exception) -> None:
        """A send whose write failed: a clash of its transaction ID is a retry of a request
        from before a restart (the earlier event answers it); anything else is its error."""
        key = send.txn_key(room_id)
        earlier = await self.store.event_by_txn(*key) if key and isinstance(exc, UniqueViolation) else None
        if earlier is not None:
            send.succeed(earlier)
        else:
            send.fail(exc)

    async def _complete(self, room_id: str, pending: "PendingCommit", built: "list[tuple[QueuedSend, Event]]") -> None:
        try:
            await self._announce(pending)
        except BaseException as exc:
            for send, _ in built:
                if (key := send.txn_key(room_id)) is not None:
                    self._txns.pop(key, None)
            for send, _ in built:
                send.fail(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for send, event in built:
            send.succeed(event.event_id)

    def _remember_txn(self, key: tuple[str, str, str, str] | None, event_id: str) -> None:
        if key is not None:
            self._txns[key] = event_id
            if len(self._txns) > _TXNS_CACHED:
                self._txns.popitem(last=False)


@dataclass(eq=False)
class QueuedSend:
    """A client's send waiting for its room's writer."""

    sender: str
    device_id: str | None
    event_type: str
    content: dict[str, Any]
    state_key: str | None
    txn_id: str | None
    #: Checks against the room's head (and stored events) before the event is built:
    #: raises MatrixError to refuse it.
    check: Callable[[RoomHead], Awaitable[None]]
    answer: "asyncio.Future[str]"
    #: The event's origin_server_ts when an application service gives it (`ts`), else now.
    timestamp: int | None = None

    @property
    def txn(self) -> tuple[str, str] | None:
        return (self.device_id, self.txn_id) if self.txn_id is not None and self.device_id else None

    def txn_key(self, room_id: str) -> tuple[str, str, str, str] | None:
        return (room_id, self.sender, self.device_id, self.txn_id) if self.txn is not None else None

    def succeed(self, event_id: str) -> None:
        if not self.answer.done():  # else the client went away
            self.answer.set_result(event_id)

    def fail(self, exc: BaseException) -> None:
        if self.answer.done():
            return
        if isinstance(exc, asyncio.CancelledError):
            self.answer.cancel()
        else:
            self.answer.set_exception(exc)

    def hidden_when_shadow_banned(self) -> bool:
        """Everything a shadow-banned user sends but their own membership changes (invites
        of others included) is answered and never stored."""
        return self.event_type != MEMBER or (self.state_key != self.sender
                                             and self.content.get("membership") == INVITE)
