"""Events of other servers into the room graph: checked (`pdus.py`), their gaps filled,
then handed to `RoomServer.input`.

A new event whose prev events this server lacks: they are asked for with
`/get_missing_events` (up to ten back to the room's forward extremities); when that does
not close the gap, the state before the earliest event left is fetched (`/state_ids`,
with `/event` or `/state` for the events not held) and given with it. Auth events not
held are fetched with `/event_auth`. Fetched state and auth chains are stored as outliers.
Backfill (`backfill`) walks back from the room's backward extremities with `/backfill`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterable

from ranvier.events.hashes import compute_event_id
from ranvier.events.identifiers import domain_of
from ranvier.events.model import Event
from ranvier.events.room_versions import RoomVersion
from ranvier.federation.acl import server_allowed
from ranvier.federation.client import FederationClient, FederationError, Unreachable, path_segment
from ranvier.federation.keys import ServerKeys
from ranvier.federation.pdus import InvalidPdu, checked_event
from ranvier.rooms.head import RoomHead
from ranvier.rooms.input import EventKind, Outcome
from ranvier.rooms.service import RoomServer
from ranvier.rooms.store import StateMap

log = logging.getLogger(__name__)

MISSING_EVENTS_LIMIT = 10
BACKFILL_LIMIT = 50
#: A backfill that found nothing is not tried again from the same place for this long.
BACKFILL_RETRY_S = 30.0
#: Fewer missing state events than this are fetched one by one, more with /state.
_FETCH_ONE_BY_ONE = 20


class PduReceiver:
    def __init__(self, rooms: RoomServer, keys: ServerKeys, client: FederationClient) -> None:
        self.rooms = rooms
        self.keys = keys
        self.client = client
        #: room_id -> (when, the backward extremities) of a backfill that found nothing.
        self._fruitless: dict[str, tuple[float, tuple[str, ...]]] = {}

    # -- new events ------------------------------------------------------------------------

    async def receive(self, origin: str, room_id: str, pdus: list[Any]) -> dict[str, str | None]:
        """Events of one room from a transaction: event ID (or position in the list) -> the
        error, None when it was taken (rejected events are taken, as the spec asks)."""
        try:
            head = await self.rooms.head(room_id)
        except Exception:  # a room this server is not in: nothing to do with its events
            head = None
        if head is None or not head.resident:
            return {_pdu_key(pdu, index, None): "this server is not in the room" for index, pdu in enumerate(pdus)}
        if not server_allowed(head.state, origin):
            return {_pdu_key(pdu, index, head.version): "the room's server ACL forbids the origin"
                    for index, pdu in enumerate(pdus)}
        results: dict[str, str | None] = {}
        events: list[Event] = []
        for index, pdu in enumerate(pdus):
            try:
                event = await checked_event(self.keys, pdu, head.version)
            except InvalidPdu as exc:
                results[_pdu_key(pdu, index, head.version)] = str(exc)
                continue
            if event.room_id != room_id:
                results[event.event_id] = "the event belongs to another room"
                continue
            events.append(event)
        if events:
            for event_id, outcome in (await self.add_events(origin, head, events)).items():
                results[event_id] = outcome.rejected_reason
        return results

    async def add_events(self, origin: str, head: RoomHead, events: list[Event],
                         kind: EventKind = EventKind.REMOTE) -> dict[str, Outcome]:
        """Place checked events, their gaps filled from `origin` first."""
        room_id, version = head.room_id, head.version
        if kind == EventKind.REMOTE:
            events = await self._with_missing(origin, head, events)
        state_before: dict[str, StateMap] = {}
        for event in await self._still_disconnected(events):
            state = await self.state_at(origin, room_id, event.event_id, version)
            if state is not None:
                state_before[event.event_id] = state
        await self._fetch_auth_events(origin, room_id, version, events)
        return await self.rooms.input(room_id, events, kind, state_before=state_before)

    async def _with_missing(self, origin: str, head: RoomHead, events: list[Event]) -> list[Event]:
        """The events with those that connect them to the room's forward extremities."""
        if not await self._still_disconnected(events):
            return events
        try:
            answer = await self.client.post(origin, f"/_matrix/federation/v1/get_missing_events/{path_segment(head.room_id)}", {
                "earliest_events": list(head.extremities), "latest_events": [event.event_id for event in events],
                "limit": MISSING_EVENTS_LIMIT, "min_depth": 0,
            })
        except (Unreachable, FederationError) as exc:
            log.info("missing events of %s not fetched from %s: %s", head.room_id, origin, exc)
            return events
        fetched = await self.checked_all(answer.get("events") if isinstance(answer, dict) else None, head.version,
                                          head.room_id)
        return sorted(fetched, key=lambda e: e.depth) + events

    async def _still_disconnected(self, events: list[Event]) -> list[Event]:
        """The events whose prev events are neither in the list nor in the graph here."""
        ids = {event.event_id for event in events}
        prevs = {prev for event in events for prev in event.prev_event_ids if prev not in ids}
        stored = await self.rooms.store.get_event_rows(prevs)
        in_graph = {event_id for event_id, row in stored.items() if not row.outlier}
        return [event for event in events if event.prev_event_ids
                and any(prev not in ids and prev not in in_graph for prev in event.prev_event_ids)]

    async def _fetch_auth_events(self, origin: str, room_id: str, version: RoomVersion, events: list[Event]) -> None:
        """Store the auth chains of events whose auth events this server lacks, as outliers
        (one `/event_auth` per event still lacking some after the chains fetched before)."""
        ids = {event.event_id for event in events}
        for event in events:
            wanted = [auth_id for auth_id in event.auth_event_ids if auth_id not in ids]
            if len(await self.rooms.store.get_event_rows(wanted)) == len(set(wanted)):
                continue
            try:
                answer = await self.client.get(
                    origin, f"/_matrix/federation/v1/event_auth/{path_segment(room_id)}/{path_segment(event.event_id)}")
            except (Unreachable, FederationError) as exc:
                log.info("auth chain of %s not fetched from %s: %s", event.event_id, origin, exc)
                continue
            chain = await self.checked_all(answer.get("auth_chain") if isinstance(answer, dict) else None,
                                            version, room_id)
            await self.store_outliers(room_id, chain, version)

    async def state_at(self, origin: str, room_id: str, event_id: str, version: RoomVersion) -> StateMap | None:
        """The state before an event, asked of `origin`; its events stored as outliers."""
        query = {"event_id": event_id}
        try:
            ids = await self.client.get(origin, f"/_matrix/federation/v1/state_ids/{path_segment(room_id)}", query=query)
        except (Unreachable, FederationError) as exc:
            log.info("state at %s not fetched from %s: %s", event_id, origin, exc)
            return None
        pdu_ids = ids.get("pdu_ids") if isinstance(ids, dict) else None
        chain_ids = ids.get("auth_chain_ids") if isinstance(ids, dict) else None
        if not isinstance(pdu_ids, list) or not isinstance(chain_ids, list):
            return None
        wanted = [i for i in dict.fromkeys([*chain_ids, *pdu_ids]) if isinstance(i, str)]
        held = await self.rooms.store.get_event_rows(wanted)
        missing = [event_id for event_id in wanted if event_id not in held]
        if len(missing) <= _FETCH_ONE_BY_ONE:
            fetched = await self.fetch_events(origin, room_id, missing, version)
        else:
            try:
                answer = await self.client.get(origin, f"/_matrix/federation/v1/state/{path_segment(room_id)}",
                                               query=query)
            except (Unreachable, FederationError) as exc:
                log.info("state at %s not fetched from %s: %s", event_id, origin, exc)
                return None
            raw = [*answer.get("auth_chain", []), *answer.get("pdus", [])] if isinstance(answer, dict) else []
            fetched = await self.checked_all(raw, version, room_id)
        await self.store_outliers(room_id, fetched, version)
        events = {**{i: row.event for i, row in held.items()}, **{e.event_id: e for e in fetched}}
        state = {}
        for event_id in pdu_ids:
            event = events.get(event_id)
            if event is not None and event.state_key is not None:
                state[(event.type, event.state_key)] = event_id
        return state

    async def fetch_events(self, origin: str, room_id: str, event_ids: Iterable[str],
                           version: RoomVersion) -> list[Event]:
        """Events asked for one by one (`/event`), checked; those that fail are left out."""
        async def one(event_id: str) -> Event | None:
            try:
                answer = await self.client.get(origin, f"/_matrix/federation/v1/event/{path_segment(event_id)}")
            except (Unreachable, FederationError) as exc:
                log.info("event %s not fetched from %s: %s", event_id, origin, exc)
                return None
            pdus = answer.get("pdus") if isinstance(answer, dict) else None
            checked = await self.checked_all(pdus, version, room_id)
            return next((event for event in checked if event.event_id == event_id), None)

        found = await asyncio.gather(*(one(event_id) for event_id in event_ids))
        return [event for event in found if event is not None]

    async def checked_all(self, pdus: Any, version: RoomVersion, room_id: str) -> list[Event]:
        """The PDUs that pass the checks, of the room; the others are logged and left out."""
        events = []
        for pdu in pdus if isinstance(pdus, list) else []:
            try:
                event = await checked_event(self.keys, pdu, version)
            except InvalidPdu as exc:
                log.info("a PDU of %s was dropped: %s", room_id, exc)
                continue
            if event.room_id == room_id:
                events.append(event)
        return events

    async def store_outliers(self, room_id: str, events: list[Event], version: RoomVersion) -> dict[str, Outcome]:
        if not events:
            return {}
        return await self.rooms.input(room_id, sorted(events, key=lambda e: e.depth), EventKind.OUTLIER,
                                      room_version=version)

    # -- history ---------------------------------------------------------------------------

    async def backfill(self, room_id: str, limit: int = BACKFILL_LIMIT) -> int:
        """Ask a server in the room for the history before the room's backward extremities;
        returns how many events were added."""
        head = await self.rooms.head(room_id)
        extremities = [event_id for event_id, _ in await self.rooms.graph.backward_extremities(room_id)][:5]
        if not extremities:
            return 0
        fruitless = self._fruitless.get(room_id)
        if fruitless is not None and fruitless[1] == tuple(extremities) and time.monotonic() - fruitless[0] < BACKFILL_RETRY_S:
            return 0
        servers = sorted({domain_of(user_id) for user_id in head.joined} - {self.rooms.server_name, None})
        servers += [s for s in _servers_of_events(extremities) if s not in servers and s != self.rooms.server_name]
        for server in servers:
            try:
                answer = await self.client.get(server, f"/_matrix/federation/v1/backfill/{path_segment(room_id)}",
                                               query={"v": extremities, "limit": str(limit)})
            except (Unreachable, FederationError) as exc:
                log.info("backfill of %s from %s failed: %s", room_id, server, exc)
                continue
            events = await self.checked_all(answer.get("pdus") if isinstance(answer, dict) else None, head.version,
                                             room_id)
            if not events:
                continue
            outcomes = await self.add_events(server, head, events, EventKind.BACKFILL)
            added = sum(1 for outcome in outcomes.values() if not outcome.known)
            if added:
                self._fruitless.pop(room_id, None)
                return added
        self._fruitless[room_id] = (time.monotonic(), tuple(extremities))
        return 0


def _pdu_key(pdu: Any, index: int, version: RoomVersion | None) -> str:
    """How a PDU's result is keyed: its event ID when one can be told, else its position."""
    event_id = pdu.get("event_id") if isinstance(pdu, dict) else None
    if not isinstance(event_id, str) and isinstance(pdu, dict) and version is not None:
        try:
            event_id = compute_event_id(pdu, version)
        except Exception:  # a PDU too malformed to hash
            event_id = None
    return event_id if isinstance(event_id, str) else f"#{index}"


def _servers_of_events(event_ids: list[str]) -> list[str]:
    """The servers named in event IDs of versions 1 and 2 (later IDs name none)."""
    return [server for server in (domain_of(event_id) for event_id in event_ids if ":" in event_id) if server]
