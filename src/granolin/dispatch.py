"""Running handlers: one room's events in order, pending work that survives a crash, idempotent sends.

Each event a handler wants becomes a :class:`Job`: the event and the IDs of
the handlers still to run on it. Jobs of one room go through that room's lane,
one after the other; rooms run side by side, and the sync loop never waits
for them. A handler registered as concurrent (or every handler, with
``ordering="none"``) runs as its own task at once instead.

The pending jobs are saved in the hardcopy with the sync token that brought
them, so a crash re-runs exactly the handlers that had not finished. A handler
re-run after a crash sends with the same transaction IDs as the first run (see
:func:`derived_txn_id`), so the homeserver answers with the events already sent
instead of storing them twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from .events import AccountDataEvent, EphemeralEvent, Event, InvitationEvent, timeline_event

Handler = Callable[..., Awaitable[Any] | Any]
Ordering = Literal["room", "none"]


@dataclass(slots=True)
class SendScope:
    """The handler run whose sends get derived transaction IDs."""

    seed: str
    sent: int = 0

    def next_txn_id(self) -> str:
        txn_id = derived_txn_id(self.seed, self.sent)
        self.sent += 1
        return txn_id


send_scope: ContextVar[SendScope | None] = ContextVar("granolin_send_scope", default=None)


def derived_txn_id(seed: str, count: int) -> str:
    """The transaction ID of the ``count``-th send (from 0) of the handler run named by ``seed``."""
    return "g" + hashlib.sha256(f"{seed}\n{count}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Registered:
    """A handler registered with ``@on`` (its ID is stable across restarts)."""

    handler_id: str
    handler: Handler
    types: tuple[type[Event], ...]
    own: bool
    concurrent: bool


_KINDS: dict[type[Event], str] = {InvitationEvent: "invite", AccountDataEvent: "account_data", EphemeralEvent: "ephemeral"}


def event_kind(event: Event) -> str:
    """How to rebuild ``event`` from its JSON: timeline, invite, account_data or ephemeral."""
    return _KINDS.get(type(event), "timeline")


def rebuild_event(kind: str, raw: dict[str, Any], room_id: str | None) -> Event:
    if kind == "invite":
        return InvitationEvent(raw, room_id)
    if kind == "account_data":
        return AccountDataEvent(raw, room_id)
    if kind == "ephemeral":
        return EphemeralEvent(raw, room_id)
    return timeline_event(raw, room_id)


@dataclass(eq=False, slots=True)
class Job:
    """An event and the handlers that have not finished with it yet."""

    event: Event
    remaining: list[str]

    @property
    def seed(self) -> str:
        """Names the event for derived transaction IDs: its ID, else a digest of its JSON."""
        event_id = self.event.raw.get("event_id")
        if not isinstance(event_id, str):
            event_id = hashlib.sha256(json.dumps(self.event.raw, sort_keys=True).encode()).hexdigest()
        return f"{self.event.room_id}|{event_id}"

    def to_json(self) -> dict[str, Any]:
        """The job for the hardcopy; an event that arrived encrypted is saved as it arrived, never in the clear."""
        raw = self.event.encryption.original if self.event.encryption is not None else self.event.raw
        return {"kind": event_kind(self.event), "room_id": self.event.room_id, "event": raw, "handlers": list(self.remaining)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        event = rebuild_event(str(data.get("kind")), dict(data["event"]), data.get("room_id"))
        return cls(event, [str(handler_id) for handler_id in data.get("handlers") or []])


@dataclass(eq=False)
class WorkQueue:
    """The pending jobs, the per-room lanes that run them, and the concurrent handler tasks."""

    execute: Callable[[Job, str], Awaitable[None]]
    """Runs one handler on one job; returning (even after the handler raised) means finished."""
    changed: Callable[[], None]
    """Called when a handler finished, so the pending jobs can be saved."""
    jobs: dict[Job, None] = field(default_factory=dict)
    """Every job not finished yet, queued or waiting, in arrival order: what the hardcopy saves."""
    _waiting: list[Job] = field(default_factory=list)
    _lanes: dict[str | None, deque[tuple[Job, list[str]]]] = field(default_factory=dict)
    _workers: dict[str | None, asyncio.Task[None]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def add(self, job: Job, concurrent: set[str]) -> None:
        """Queue ``job``: its ``concurrent`` handlers start now, the others wait their turn in the room's lane."""
        self.jobs[job] = None
        loop = asyncio.get_running_loop()
        for handler_id in job.remaining:
            if handler_id in concurrent:
                task = loop.create_task(self._run(job, handler_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        in_order = [handler_id for handler_id in job.remaining if handler_id not in concurrent]
        if in_order:
            key = job.event.room_id
            self._lanes.setdefault(key, deque()).append((job, in_order))
            if key not in self._workers:
                self._workers[key] = loop.create_task(self._work_through(key))

    def restore(self, jobs: list[Job]) -> None:
        """Take the pending jobs of a hardcopy; they wait for :meth:`resume`."""
        self.jobs = dict.fromkeys(jobs)
        self._waiting = list(jobs)

    @property
    def waiting(self) -> int:
        """How many jobs wait to be queued again (restored, or cancelled by a stop)."""
        return len(self._waiting)

    def waiting_jobs(self) -> list[Job]:
        return list(self._waiting)

    def discard(self, job: Job) -> None:
        """Forget a waiting job (its event can no longer be handled)."""
        self._waiting.remove(job)
        self.jobs.pop(job, None)

    def resume(self, concurrent_of: Callable[[Job], set[str]]) -> None:
        """Queue again the waiting jobs, in their order."""
        waiting, self._waiting = self._waiting, []
        for job in waiting:
            self.add(job, concurrent_of(job))

    async def _work_through(self, key: str | None) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                job, handler_ids = lane[0]
                for handler_id in handler_ids:
                    await self._run(job, handler_id)
                lane.popleft()
        finally:
            if not lane:
                self._lanes.pop(key, None)
            self._workers.pop(key, None)

    async def _run(self, job: Job, handler_id: str) -> None:
        await self.execute(job, handler_id)
        with contextlib.suppress(ValueError):
            job.remaining.remove(handler_id)
        if not job.remaining:
            self.jobs.pop(job, None)
        self.changed()

    @property
    def busy(self) -> bool:
        return bool(self._workers or self._tasks)

    async def drain(self) -> None:
        """Wait until every queued job, and any queued meanwhile, has been handled."""
        while self.busy:
            await asyncio.wait({*self._workers.values(), *self._tasks})

    async def stop(self, grace: float) -> None:
        """Let running handlers finish for ``grace`` seconds, then cancel the rest (they stay pending)."""
        if self.busy:
            await asyncio.wait({*self._workers.values(), *self._tasks}, timeout=grace)
        running = {*self._workers.values(), *self._tasks}
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
        self._lanes.clear()
        self._waiting = list(self.jobs)

    def to_json(self) -> list[dict[str, Any]]:
        return [job.to_json() for job in self.jobs]
