"""Room events pushed to application services: `PUT {url}/_matrix/app/v1/transactions/{txnId}`
with the hs_token, body `{"events": [ClientEvent, ...]}`.

Nothing is copied. Every service with a URL is a destination of the durable `appservice`
delivery queue (outbound/queue.py), whose positions are room event stream positions: a
service is sent, in stream order, the events after its position up to the room server's
current one (below which every event committed) that it is interested in (interest.py),
at most 100 per transaction. Only events at positive positions are read, what /sync
reports (timeline events and out-of-band memberships); backfilled history, outliers,
rejected and soft-failed events are never sent. Events are in the client format, with
`room_id`, redacted if they are redacted now. Events are judged when they are read, as
they commit: a scan that finds nothing of interest still moves the service's position
past what it read, with no request.

A transaction's ID follows from the positions of its first and last events, and a retry
reads exactly the range the failed attempt read, so it repeats the same transaction. Any
answer but a 2xx, or no answer, is retried with the queue's backoff for as long as it
takes: a service that is down misses nothing. A restart resumes from the recorded
position (an acknowledgement just before a crash aside, after which the transaction is
sent again, under a new ID if events arrived meanwhile). A service registered for the
first time starts at the current position: it is not sent what happened before it; one
whose registration is gone is forgotten.
"""

from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import quote

import aiohttp
import orjson

from ranvier.appservice.interest import Interest
from ranvier.appservice.registration import Registration
from ranvier.appservice.service import AppServices, authorization
from ranvier.config import OutboundConfig
from ranvier.events.model import Event
from ranvier.outbound.queue import DeliveryQueue, DestinationGone, Item, RetryLater, RetryPolicy
from ranvier.requester import Requester
from ranvier.rooms.service import RoomServer
from ranvier.rooms.store import PersistedEvent
from ranvier.rooms.sync_queries import SyncQueries
from ranvier.storage.engine import Database, Transaction
from ranvier.sync.timeline import Timeline

#: Events read per scan, and so at most sent per transaction.
EVENTS_PER_TRANSACTION = 100


async def put_transaction(session: aiohttp.ClientSession, registration: Registration, txn_id: str,
                          body: dict[str, Any], timeout_s: float) -> None:
    """One transaction to the service; RetryLater unless it answered with a 2xx."""
    url = f"{registration.url}/_matrix/app/v1/transactions/{quote(txn_id, safe='')}"
    headers = {**authorization(registration), "Content-Type": "application/json"}
    try:
        async with session.put(url, data=orjson.dumps(body), headers=headers,
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if not 200 <= response.status < 300:
                raise RetryLater(f"application service {registration.id} answered {response.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RetryLater(f"application service {registration.id} could not be reached: {exc!r}") from None


def retry_policy(outbound: OutboundConfig) -> RetryPolicy:
    """The backoff of transactions to services: the outbound one, never giving up."""
    return RetryPolicy(initial_backoff_ms=outbound.initial_backoff_ms, max_backoff_ms=outbound.max_backoff_ms,
                       give_up_after_ms=None)


class Transactions:
    """The source of the `appservice` queue, and a persist hook of the room server (which
    only wakes the queue once events commit)."""

    def __init__(self, services: AppServices, rooms: RoomServer, timeline: Timeline, db: Database,
                 outbound: OutboundConfig) -> None:
        self.services = services
        self.rooms = rooms
        self.timeline = timeline
        self.queries = SyncQueries(rooms.store)
        self.interest = Interest(rooms, services.registrations)
        self.timeout_s = outbound.request_timeout_ms / 1000
        self.queue = DeliveryQueue("appservice", db, self, retry_policy(outbound),
                                   batch_size=EVENTS_PER_TRANSACTION)
        #: service_id -> (after, upto): the range the batch being delivered was read from,
        #: read again by its retries.
        self._ranges: dict[str, tuple[int, int]] = {}

    async def start(self) -> None:
        await self.queue.start()
        for registration in self.services.registrations:
            if registration.url is not None and registration.id not in self.queue:
                await self.queue.add(registration.id, self.rooms.positions.current)

    async def stop(self) -> None:
        await self.queue.stop()

    # -- the persist hook ------------------------------------------------------------------

    def prepare(self, draft: Any, event: Event, item: PersistedEvent) -> bool:
        """Every event wakes the services once committed (each reads what interests it)."""
        return True

    async def write(self, txn: Transaction, prepared: list[tuple[PersistedEvent, bool]]) -> None:
        """Nothing is stored: the services read the events from the room server's table."""

    def committed(self, prepared: list[tuple[PersistedEvent, bool]]) -> None:
        for registration in self.services.registrations:
            self.queue.wake(registration.id)

    # -- the queue's source ----------------------------------------------------------------

    async def pending(self, destination: str, after: int, limit: int) -> Sequence[Item]:
        """The events after `after` that interest the service, then `(position, None)` for
        the last one read when it is not among them (the queue moves past it)."""
        registration = self.services.by_id(destination)
        if registration is None or registration.url is None:
            raise DestinationGone(destination)
        retried = self._ranges.get(destination)
        upto = retried[1] if retried is not None and retried[0] == after else self.rooms.positions.current
        if upto <= after:
            return []
        rows = await self.queries.events_between(after=after, upto=upto, limit=limit)
        read_up_to = rows[-1].stream_ordering if len(rows) == limit else upto
        items: list[Item] = [(row.stream_ordering, row) for row in await self.interest.events(registration, rows)]
        if not items or items[-1][0] < read_up_to:
            items.append((read_up_to, None))
        self._ranges[destination] = (after, upto)
        return items

    async def deliver(self, destination: str, items: Sequence[Item]) -> None:
        rows = [row for _, row in items if row is not None]
        if rows:
            registration = self.services.by_id(destination)
            reader = Requester(user_id=registration.sender, device_id="", is_guest=False, token_hash="",
                               app_service=registration.id)
            events = await self.timeline.serialize(rows, reader)
            txn_id = f"r{rows[0].stream_ordering}-{rows[-1].stream_ordering}"
            await put_transaction(self.services.session(), registration, txn_id, {"events": events}, self.timeout_s)
        self._ranges.pop(destination, None)
