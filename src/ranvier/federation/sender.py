"""The outbound transaction sender: this server's PDUs and EDUs for each destination, sent
as `PUT /_matrix/federation/v1/send/{txnId}` through the durable per-destination queues of
`outbound/` (retries with backoff that survive a restart).

PDUs: a persist hook routes each event this server sends to the servers with members in
the room (and the server of a membership event's target), one row per destination in the
event's own transaction; the events themselves stay in the room server's table. EDUs
(typing, receipts, presence, device list updates, to-device messages, signing key
updates) are stored per destination until sent. Each queue sends at most 50 PDUs or 100
EDUs per transaction; a transaction's ID follows from its positions, so a retry repeats it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterable, Sequence

import orjson

from ranvier.events.identifiers import domain_of
from ranvier.events.model import MEMBER, Event
from ranvier.federation.client import FederationClient, FederationError, Unreachable, path_segment
from ranvier.federation.store import FederationStore
from ranvier.outbound.queue import DeliveryQueue, Item, RetryLater, RetryPolicy
from ranvier.rooms.store import PersistedEvent
from ranvier.storage.engine import Database, Transaction

log = logging.getLogger(__name__)

MAX_PDUS_PER_TRANSACTION = 50
MAX_EDUS_PER_TRANSACTION = 100
#: Deliveries failing for this long are dropped (and logged).
GIVE_UP_AFTER_MS = 24 * 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


async def send_transaction(client: FederationClient, destination: str, txn_id: str, *, pdus: list[dict[str, Any]],
                           edus: list[dict[str, Any]]) -> None:
    """One transaction; RetryLater unless it was taken. The PDU and EDU queues take turns
    (the client's lock per destination): a server takes one transaction at a time from an
    origin, and Synapse refuses a second one meanwhile."""
    body = {"origin": client.server_name, "origin_server_ts": now_ms(), "pdus": pdus, "edus": edus}
    lock = client.transaction_locks.setdefault(destination, asyncio.Lock())
    try:
        async with lock:
            await client.put(destination, f"/_matrix/federation/v1/send/{path_segment(txn_id)}", body)
    except (Unreachable, FederationError) as exc:
        raise RetryLater(str(exc)) from None


class _Wakeups:
    """Starting or waking a destination's queue from synchronous callbacks."""

    def __init__(self, queue: DeliveryQueue) -> None:
        self.queue = queue
        self._tasks: set[asyncio.Task] = set()

    async def ensure(self, destinations: Iterable[str]) -> None:
        for destination in destinations:
            if destination in self.queue:
                self.queue.wake(destination)
            else:
                await self.queue.add(destination, 0)

    def soon(self, destinations: Iterable[str]) -> None:
        task = asyncio.get_running_loop().create_task(self.ensure(list(destinations)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class PduSender:
    """A persist hook of the room server and the source of the `federation_pdus` queue."""

    def __init__(self, db: Database, store: FederationStore, client: FederationClient, server_name: str,
                 policy: RetryPolicy) -> None:
        self.store = store
        self.client = client
        self.server_name = server_name
        self.queue = DeliveryQueue("federation_pdus", db, self, policy, batch_size=MAX_PDUS_PER_TRANSACTION)
        self._wakeups = _Wakeups(self.queue)
        #: room_id -> (the joined members mapping it was worked out from, the other servers).
        self._servers: dict[str, tuple[dict[str, Any], set[str]]] = {}

    async def start(self) -> None:
        await self.queue.start()
        await self._wakeups.ensure(await self.store.pdu_destinations())

    async def stop(self) -> None:
        await self.queue.stop()

    def servers_of(self, room_id: str, joined: dict[str, Any]) -> set[str]:
        """The other servers with members joined: worked out again only when the room's
        joined members change (each change makes a new mapping), not for every message."""
        cached = self._servers.get(room_id)
        if cached is not None and cached[0] is joined:
            return cached[1]
        servers = {domain_of(user_id) for user_id in joined} - {self.server_name, None}
        self._servers[room_id] = (joined, servers)
        return servers

    def destinations_of(self, room_id: str, joined: dict[str, Any], event: Event) -> set[str]:
        servers = self.servers_of(room_id, joined)
        if event.type == MEMBER and event.state_key and domain_of(event.state_key) not in (self.server_name, None):
            return servers | {domain_of(event.state_key)}
        return servers

    # -- the persist hook ------------------------------------------------------------------

    def prepare(self, draft: Any, event: Event, item: PersistedEvent) -> list[str] | None:
        """The servers this server's new event goes to: those with members in the room."""
        if domain_of(event.sender) != self.server_name:
            return None
        return sorted(self.destinations_of(draft.head.room_id, draft.joined_members(), event)) or None

    async def write(self, txn: Transaction, prepared: list[tuple[PersistedEvent, list[str]]]) -> None:
        await self.store.route_pdus(txn, [(destination, item.stream_ordering)
                                          for item, destinations in prepared for destination in destinations])

    def committed(self, prepared: list[tuple[PersistedEvent, list[str]]]) -> None:
        self._wakeups.soon({destination for _, destinations in prepared for destination in destinations})

    async def forward(self, event_stream: int, destinations: Iterable[str]) -> None:
        """Send another server's event on (a join, leave or knock made through this server)."""
        routes = [(destination, event_stream) for destination in destinations if destination != self.server_name]
        if routes:
            await self.store.route_pdus_now(routes)
            await self._wakeups.ensure({destination for destination, _ in routes})

    # -- the queue's source --------------------------------------------------------------

    async def pending(self, destination: str, after: int, limit: int) -> Sequence[Item]:
        return [(position, orjson.loads(json_text))
                for position, json_text, _ in await self.store.pending_pdus(destination, after, limit)]

    async def deliver(self, destination: str, items: Sequence[Item]) -> None:
        await send_transaction(self.client, destination, f"p{items[0][0]}-{items[-1][0]}",
                               pdus=[pdu for _, pdu in items], edus=[])
        await self.store.forget_sent_pdus(destination, items[-1][0])


class EduSender:
    """The source of the `federation_edus` queue."""

    def __init__(self, db: Database, store: FederationStore, client: FederationClient, server_name: str,
                 policy: RetryPolicy) -> None:
        self.store = store
        self.client = client
        self.server_name = server_name
        self.queue = DeliveryQueue("federation_edus", db, self, policy, batch_size=MAX_EDUS_PER_TRANSACTION)
        self._wakeups = _Wakeups(self.queue)
        self._next_position = 1
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._next_position = max(await self.store.max_edu_position(), await self.queue.highest_position()) + 1
        await self.queue.start()
        await self._wakeups.ensure(await self.store.edu_destinations())

    async def stop(self) -> None:
        await self.queue.stop()

    async def send(self, destinations: Iterable[str], edu_type: str, content: dict[str, Any]) -> None:
        """Queue one EDU for each destination (this server excepted)."""
        await self.send_each([(destination, edu_type, content) for destination in destinations])

    async def send_each(self, edus: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Queue EDUs: (destination, type, content) each."""
        edus = [edu for edu in edus if edu[0] != self.server_name and edu[0] is not None]
        if not edus:
            return
        async with self._lock:  # positions are written in the order they are handed out
            start = self._next_position
            self._next_position += len(edus)
            await self.store.add_edus([(start + index, destination, edu_type, content)
                                       for index, (destination, edu_type, content) in enumerate(edus)])
        await self._wakeups.ensure({destination for destination, _, _ in edus})

    async def pending(self, destination: str, after: int, limit: int) -> Sequence[Item]:
        return [(position, {"edu_type": edu_type, "content": orjson.loads(content)})
                for position, edu_type, content in await self.store.pending_edus(destination, after, limit)]

    async def deliver(self, destination: str, items: Sequence[Item]) -> None:
        await send_transaction(self.client, destination, f"e{items[0][0]}-{items[-1][0]}",
                               pdus=[], edus=[edu for _, edu in items])
        await self.store.forget_sent_edus(destination, items[-1][0])


def retry_policy(initial_backoff_ms: int, max_backoff_ms: int) -> RetryPolicy:
    return RetryPolicy(initial_backoff_ms=initial_backoff_ms, max_backoff_ms=max_backoff_ms,
                       give_up_after_ms=GIVE_UP_AFTER_MS)
