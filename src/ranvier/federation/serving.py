"""What this server hands other servers of its rooms: single events, the state at an event,
auth chains, /backfill and /get_missing_events pages.

A server sees an event when the room's history visibility at it lets one of its users see
it (a world-readable or shared room: any server with a user who was ever in the room;
`invited` or `joined`: a user of that server was invited or joined when it was sent), the
rule clients get, applied to the server's users together. Each answer is a few batched
queries: the server's users' membership histories are read once per request.
"""

from __future__ import annotations

from typing import Any

from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of
from ranvier.federation.membership import federation_pdu, resident_room
from ranvier.rooms.graph_store import GraphQueries
from ranvier.rooms.head import RoomHead
from ranvier.rooms.service import RoomServer
from ranvier.rooms.store import EventRow
from ranvier.rooms.visibility import is_visible

MAX_BACKFILL = 100
MAX_MISSING = 20


class Serving:
    def __init__(self, rooms: RoomServer) -> None:
        self.rooms = rooms
        self.store = rooms.store
        self.graph: GraphQueries = rooms.graph

    async def room_for(self, origin: str, room_id: str) -> RoomHead:
        """The room, if this server holds it and its server ACL lets the origin in."""
        return await resident_room(self.rooms, room_id, origin)

    async def _histories(self, room_id: str, origin: str) -> list[list[tuple[int, str]]]:
        """The membership histories of the origin's users in the room."""
        rows = await self.store.db.fetchall(
            "SELECT user_id, stream_ordering, membership FROM membership_history WHERE room_id = ? AND user_id LIKE ? "
            "ORDER BY stream_ordering", room_id, f"%:{origin}",
        )
        histories: dict[str, list[tuple[int, str]]] = {}
        for user_id, stream, membership in rows:
            if domain_of(user_id) == origin:
                histories.setdefault(user_id, []).append((stream, membership))
        return list(histories.values())

    async def visible(self, origin: str, room_id: str, rows: list[EventRow]) -> list[EventRow]:
        histories = await self._histories(room_id, origin)
        if not histories:
            return [row for row in rows if row.history_visibility == "world_readable"]
        return [row for row in rows if row.history_visibility in ("world_readable", "shared")
                or any(is_visible(row, "", history) for history in histories)]

    async def event(self, origin: str, event_id: str) -> dict[str, Any]:
        row = (await self.store.get_event_rows([event_id])).get(event_id)
        if row is None or row.event.rejected_reason is not None:
            raise MatrixError("M_NOT_FOUND", "Event not found")
        await self.room_for(origin, row.event.room_id)
        if not await self.visible(origin, row.event.room_id, [row]):
            raise MatrixError("M_NOT_FOUND", "Event not found")
        return federation_pdu(row)

    async def _state_rows(self, origin: str, room_id: str, event_id: str) -> tuple[EventRow, dict[str, EventRow]]:
        await self.room_for(origin, room_id)
        row = (await self.store.get_event_rows([event_id])).get(event_id)
        if row is None or row.event.room_id != room_id or row.outlier or row.event.rejected_reason is not None:
            raise MatrixError("M_NOT_FOUND", "No state is known at that event")
        if not await self.visible(origin, room_id, [row]):
            raise MatrixError("M_FORBIDDEN", "This server may not see the room at that event")
        state_ids = await self.rooms.states.ids(row.state_group_before)
        return row, await self.store.get_event_rows(state_ids.values())

    async def state_ids(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """/state_ids: the state before an event and its auth chain, as event IDs."""
        _, state = await self._state_rows(origin, room_id, event_id)
        chain = await self.graph.auth_chain_of([row.event for row in state.values()])
        return {"pdu_ids": list(state), "auth_chain_ids": sorted(chain)}

    async def state(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """/state: the same as events."""
        _, state = await self._state_rows(origin, room_id, event_id)
        chain = await self.store.get_event_rows(await self.graph.auth_chain_of([row.event for row in state.values()]))
        return {"pdus": [federation_pdu(row) for row in state.values()],
                "auth_chain": [federation_pdu(row) for row in chain.values()]}

    async def event_auth(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        await self.room_for(origin, room_id)
        row = (await self.store.get_event_rows([event_id])).get(event_id)
        if row is None or row.event.room_id != room_id:
            raise MatrixError("M_NOT_FOUND", "Event not found")
        if not await self.visible(origin, room_id, [row]):
            raise MatrixError("M_FORBIDDEN", "This server may not see that event")
        chain = await self.store.get_event_rows(await self.graph.auth_chain_of([row.event]))
        return {"auth_chain": [federation_pdu(r) for r in chain.values()]}

    async def backfill(self, origin: str, room_id: str, from_ids: list[str], limit: int) -> list[dict[str, Any]]:
        await self.room_for(origin, room_id)
        ids = await self.graph.backfill_ids(room_id, from_ids, min(max(limit, 0), MAX_BACKFILL))
        rows = await self.store.get_event_rows(ids)
        ordered = [rows[event_id] for event_id in ids if event_id in rows]
        return [federation_pdu(row) for row in await self.visible(origin, room_id, ordered)]

    async def missing_events(self, origin: str, room_id: str, earliest: list[str], latest: list[str], limit: int,
                             min_depth: int) -> list[dict[str, Any]]:
        await self.room_for(origin, room_id)
        ids = await self.graph.missing_ids(room_id, earliest, latest, min(max(limit, 0), MAX_MISSING), min_depth)
        rows = await self.store.get_event_rows(ids)
        ordered = [rows[event_id] for event_id in ids if event_id in rows]
        return [federation_pdu(row) for row in await self.visible(origin, room_id, ordered)]
