"""Durable delivery queues: one per destination, with retries and exponential backoff.

A queue does not copy what it delivers. Its items live where their owner keeps them
(push notifications in the push tables, later room events for federation), each at an
increasing position; the queue keeps, per destination, the position up to which
everything was delivered, and its retry state, in `outbound_destinations`. A restart
resumes every destination from there: nothing acknowledged is sent again, nothing
unsent is lost. The one window left is a crash between a destination's acknowledgement
and the write of the new position; the item is then sent once more (push gateways
suppress duplicates by event ID, federation by transaction ID).

One worker task per destination delivers a batch, records the new position, and asks
for the next; it sleeps on an event that `wake` sets when its owner has new items.
A failed delivery is retried after 1, 2, 4 ... times the initial backoff, up to the
maximum; the retry time survives a restart. After `give_up_after_ms` of failures the
batch is dropped (logged) and the destination moves on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from ranvier.storage.engine import Database

log = logging.getLogger(__name__)

Item = tuple[int, Any]
"""(position, payload)"""


class RetryLater(Exception):
    """The destination did not take the batch; try again after a backoff."""


class DestinationGone(Exception):
    """The destination no longer exists (a deleted pusher): its queue is dropped."""


class Source(Protocol):
    """What a queue's owner provides: the items after a position, and their delivery."""

    async def pending(self, destination: str, after: int, limit: int) -> Sequence[Item]: ...

    async def deliver(self, destination: str, items: Sequence[Item]) -> None:
        """Deliver a batch, or raise RetryLater / DestinationGone."""


@dataclass(frozen=True)
class RetryPolicy:
    initial_backoff_ms: int = 1000
    max_backoff_ms: int = 3600 * 1000
    #: Failures for this long drop the batch; None retries forever.
    give_up_after_ms: int | None = 24 * 3600 * 1000

    def backoff_ms(self, failures: int) -> int:
        """The wait after the n-th failure in a row, with ±10 % jitter so that destinations
        that failed together do not retry together."""
        base = min(self.initial_backoff_ms * 2 ** min(failures - 1, 40), self.max_backoff_ms)
        return int(base * random.uniform(0.9, 1.1))


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Destination:
    name: str
    position: int
    failures: int = 0
    retry_at: int = 0
    failing_since: int | None = None
    task: asyncio.Task | None = None
    wakeup: asyncio.Event | None = None


class DeliveryQueue:
    """The destinations of one kind of traffic (`queue` names it in the table)."""

    def __init__(self, queue: str, db: Database, source: Source, policy: RetryPolicy, *, batch_size: int = 1) -> None:
        self.queue = queue
        self.db = db
        self.source = source
        self.policy = policy
        self.batch_size = batch_size
        self._destinations: dict[str, _Destination] = {}
        self._stopped = False

    async def start(self) -> None:
        """Resume every destination from its stored position and retry state."""
        rows = await self.db.fetchall(
            "SELECT destination, position, failures, retry_at, failing_since FROM outbound_destinations "
            "WHERE queue = ?", self.queue,
        )
        for name, position, failures, retry_at, failing_since in rows:
            self._run(_Destination(name, position, failures, retry_at, failing_since))

    async def highest_position(self) -> int:
        """The highest position delivered to any destination: an owner that deletes what was
        delivered numbers its next items above it."""
        return int(await self.db.fetchval(
            "SELECT COALESCE(MAX(position), 0) FROM outbound_destinations WHERE queue = ?", self.queue))

    async def stop(self) -> None:
        self._stopped = True
        tasks = [d.task for d in self._destinations.values() if d.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._destinations.clear()

    def __contains__(self, destination: str) -> bool:
        return destination in self._destinations

    async def add(self, destination: str, position: int) -> None:
        """Start delivering to a destination the items after `position` (kept if it exists)."""
        if destination in self._destinations:
            return
        await self.db.execute(
            "INSERT INTO outbound_destinations (queue, destination, position) VALUES (?, ?, ?) "
            "ON CONFLICT (queue, destination) DO NOTHING", self.queue, destination, position,
        )
        self._run(_Destination(destination, position))

    async def remove(self, destination: str) -> None:
        """Stop delivering to a destination and forget it."""
        entry = self._destinations.pop(destination, None)
        if entry is not None and entry.task is not None and entry.task is not asyncio.current_task():
            entry.task.cancel()
        await self.db.execute("DELETE FROM outbound_destinations WHERE queue = ? AND destination = ?",
                              self.queue, destination)

    def wake(self, destination: str) -> None:
        """The destination has new items (a destination backing off waits out its backoff)."""
        entry = self._destinations.get(destination)
        if entry is not None and entry.wakeup is not None:
            entry.wakeup.set()

    def _run(self, entry: _Destination) -> None:
        if self._stopped:
            return
        entry.wakeup = asyncio.Event()
        entry.wakeup.set()  # look for items at once
        self._destinations[entry.name] = entry
        entry.task = asyncio.get_running_loop().create_task(self._work(entry))

    async def _work(self, entry: _Destination) -> None:
        while True:
            delay = entry.retry_at - now_ms()
            if delay > 0:
                await asyncio.sleep(delay / 1000)
            await entry.wakeup.wait()
            entry.wakeup.clear()
            try:
                while await self._deliver_next(entry):
                    pass
            except DestinationGone:
                await self.remove(entry.name)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # a failure is recorded and retried; the worker never dies of it
                if self._stopped:  # its cancellation turned into another error: stop all the same
                    return
                log.exception("delivery to %s %s failed", self.queue, entry.name)
                await self._failed(entry, [])

    async def _deliver_next(self, entry: _Destination) -> bool:
        """Deliver one batch; False when there is nothing to deliver or it must wait."""
        items = await self.source.pending(entry.name, entry.position, self.batch_size)
        if not items:
            return False
        try:
            await self.source.deliver(entry.name, items)
        except RetryLater as exc:
            log.info("delivery to %s %s will be retried: %s", self.queue, entry.name, exc)
            return await self._failed(entry, items)
        await self._advance(entry, items[-1][0])
        return True

    async def _failed(self, entry: _Destination, items: Sequence[Item]) -> bool:
        now = now_ms()
        entry.failures += 1
        entry.failing_since = entry.failing_since or now
        give_up = self.policy.give_up_after_ms
        if items and give_up is not None and now - entry.failing_since >= give_up:
            log.warning("%s %s failed for %d s; %d item(s) dropped", self.queue, entry.name,
                        (now - entry.failing_since) // 1000, len(items))
            await self._advance(entry, items[-1][0])
            return True
        entry.retry_at = now + self.policy.backoff_ms(entry.failures)
        await self.db.execute(
            "UPDATE outbound_destinations SET failures = ?, retry_at = ?, failing_since = ? "
            "WHERE queue = ? AND destination = ?",
            entry.failures, entry.retry_at, entry.failing_since, self.queue, entry.name,
        )
        entry.wakeup.set()  # try again once the backoff is over
        return False

    async def _advance(self, entry: _Destination, position: int) -> None:
        """Everything up to `position` is delivered (durably recorded before the next batch)."""
        await self.db.execute(
            "UPDATE outbound_destinations SET position = ?, failures = 0, retry_at = 0, failing_since = NULL "
            "WHERE queue = ? AND destination = ?", position, self.queue, entry.name,
        )
        entry.position, entry.failures, entry.retry_at, entry.failing_since = position, 0, 0, None
