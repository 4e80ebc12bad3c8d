"""Ephemeral events pushed to the application services that ask for them
(`receive_ephemeral`, MSC2409): typing notifications and public read receipts of the
rooms a service is interested in (as for room events, appservice/interest.py), and the
presence of the users it claims or who are joined to such a room. They are this server's
users' (what the typing, receipt and presence services report to their listeners); a
user's rooms are read from memory for active users, else one query per user.

They go in transactions of their own, `{"events": [], "ephemeral": [...]}` with the list
also under the unstable `de.sorunome.msc2409.ephemeral` that older services read, in the
formats of /sync plus `room_id` for typing and receipts. They are not durable: each
service has a buffer in memory, sent at most 100 at a time under IDs unique to this
process' start. A failed transaction is tried again after the outbound backoff, up to 5
times, then dropped (logged); a buffer that outgrows 1,000 events while its service is
unreachable loses its older half (logged); a restart forgets what was not sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from ranvier.appservice.interest import Interest
from ranvier.appservice.registration import Registration
from ranvier.appservice.service import AppServices
from ranvier.appservice.transactions import put_transaction
from ranvier.outbound.queue import RetryLater, RetryPolicy
from ranvier.users.personal_store import PresenceRow

log = logging.getLogger(__name__)

PER_TRANSACTION = 100
MAX_BUFFERED = 1000
MAX_ATTEMPTS = 5
UNSTABLE_KEY = "de.sorunome.msc2409.ephemeral"


class EphemeralPush:
    def __init__(self, services: AppServices, interest: Interest, policy: RetryPolicy, timeout_s: float, *,
                 typists: Callable[[str], list[str]],
                 presence_content: Callable[[PresenceRow, int], dict[str, Any]]) -> None:
        """`typists(room_id)` are who types in a room now; `presence_content(row, now_ms)`
        is a presence row as clients see it."""
        self.services = services
        self.interest = interest
        self.policy = policy
        self.timeout_s = timeout_s
        self.typists = typists
        self.presence_content = presence_content
        self.registrations = [r for r in services.registrations if r.receive_ephemeral and r.url is not None]
        self._buffers: dict[str, list[dict[str, Any]]] = {r.id: [] for r in self.registrations}
        self._wakeups: dict[str, asyncio.Event] = {r.id: asyncio.Event() for r in self.registrations}
        self._tasks: list[asyncio.Task] = []
        self._prefix = f"e{int(time.time() * 1000)}"
        self._sent = 0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work(registration)) for registration in self.registrations]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- the listeners ---------------------------------------------------------------------

    async def typing_changed(self, room_id: str, user_id: str, typing: bool) -> None:
        await self._offer_in_room(room_id, {"type": "m.typing", "room_id": room_id,
                                            "content": {"user_ids": self.typists(room_id)}})

    async def receipt_sent(self, room_id: str, user_id: str, receipt_type: str, event_id: str,
                           thread_id: str | None, ts: int) -> None:
        data: dict[str, Any] = {"ts": ts}
        if thread_id:
            data["thread_id"] = thread_id
        await self._offer_in_room(room_id, {"type": "m.receipt", "room_id": room_id,
                                            "content": {event_id: {receipt_type: {user_id: data}}}})

    async def presence_changed(self, rows: list[PresenceRow]) -> None:
        now = int(time.time() * 1000)
        for registration in self.registrations:
            for row in rows:
                if await self.interest.user(registration, row.user_id):
                    self._add(registration, {"type": "m.presence", "sender": row.user_id,
                                             "content": self.presence_content(row, now)})

    async def _offer_in_room(self, room_id: str, event: dict[str, Any]) -> None:
        for registration in self.registrations:
            if await self.interest.rooms_of(registration, [room_id]):
                self._add(registration, event)

    def _add(self, registration: Registration, event: dict[str, Any]) -> None:
        buffer = self._buffers[registration.id]
        buffer.append(event)
        if len(buffer) > MAX_BUFFERED:
            dropped = len(buffer) // 2
            del buffer[:dropped]
            log.warning("application service %s is behind: %d ephemeral events dropped", registration.id, dropped)
        self._wakeups[registration.id].set()

    # -- sending ---------------------------------------------------------------------------

    async def _work(self, registration: Registration) -> None:
        buffer, wakeup = self._buffers[registration.id], self._wakeups[registration.id]
        while True:
            await wakeup.wait()
            wakeup.clear()
            while buffer:
                batch = buffer[:PER_TRANSACTION]
                del buffer[:len(batch)]
                await self._send(registration, batch)

    async def _send(self, registration: Registration, batch: list[dict[str, Any]]) -> None:
        """One transaction, tried up to MAX_ATTEMPTS times."""
        self._sent += 1
        txn_id = f"{self._prefix}-{self._sent}"
        body = {"events": [], "ephemeral": batch, UNSTABLE_KEY: batch}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                await put_transaction(self.services.session(), registration, txn_id, body, self.timeout_s)
                return
            except RetryLater as exc:
                if attempt == MAX_ATTEMPTS:
                    log.warning("%d ephemeral events for application service %s dropped after %d attempts: %s",
                                len(batch), registration.id, attempt, exc)
                    return
                await asyncio.sleep(self.policy.backoff_ms(attempt) / 1000)
