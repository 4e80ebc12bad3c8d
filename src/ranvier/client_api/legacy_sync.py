"""The older event-stream endpoints still in the spec: /events, /events/{eventId},
/initialSync and /rooms/{roomId}/initialSync, answered from the same read model as /sync."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.sync.filters import EventFilter, RoomFilter, SyncFilter
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response
from ranvier.web.params import query_bool, query_int, query_str
from ranvier.web.routing import Routes

routes = Routes()


def _limited_filter(limit: int, include_leave: bool = False) -> SyncFilter:
    return SyncFilter(room=RoomFilter(timeline=EventFilter(limit=limit), include_leave=include_leave))


async def _room_snapshot(request: web.Request, who, room_id: str, membership: str, section: dict[str, Any],
                         end: str) -> dict[str, Any]:
    """The legacy shape of a room: its latest messages and its whole current state."""
    timeline = section.get("timeline", {"events": [], "prev_batch": end})
    if membership == "invite":
        state = section.get("invite_state", {}).get("events", [])
    else:
        state = await request.app[HOMESERVER].timeline.state(who, room_id)
    return {
        "room_id": room_id,
        "membership": membership,
        "messages": {"chunk": timeline["events"], "start": timeline["prev_batch"], "end": end},
        "state": state,
        "account_data": section.get("account_data", {}).get("events", []),
    }


@routes.get("/initialSync")
async def initial_sync(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    who = await requester(request)
    limit = query_int(request, "limit", 10, minimum=0, maximum=1000)
    archived = query_bool(request, "archived", False)
    snapshot = await hs.sync.sync(who, since=None, timeout_ms=0, full_state=False,
                                  sync_filter=_limited_filter(limit, archived))
    end = snapshot["next_batch"]
    rooms = [await _room_snapshot(request, who, room_id, membership, section, end)
             for kind, membership in (("join", "join"), ("invite", "invite"), ("leave", "leave"))
             for room_id, section in snapshot["rooms"][kind].items()]
    return json_response({"end": end, "rooms": rooms, "presence": snapshot["presence"]["events"],
                          "account_data": snapshot["account_data"]["events"]})


@routes.get("/rooms/{room_id}/initialSync")
async def room_initial_sync(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    room_id = request.match_info["room_id"]
    membership = await hs.rooms.store.membership_of(room_id, who.user_id)
    if membership is None or membership[0] != "join":
        raise MatrixError("M_FORBIDDEN", "You are not joined to this room")
    limit = query_int(request, "limit", 10, minimum=0, maximum=1000)
    sync_filter = SyncFilter(room=RoomFilter(rooms=(room_id,), timeline=EventFilter(limit=limit)))
    snapshot = await hs.sync.sync(who, since=None, timeout_ms=0, full_state=False, sync_filter=sync_filter)
    section = snapshot["rooms"]["join"].get(room_id, {})
    result = await _room_snapshot(request, who, room_id, "join", section, snapshot["next_batch"])
    visibility = (await hs.rooms.head(room_id)).state.get(("m.room.history_visibility", ""))
    result["visibility"] = "public" if visibility and visibility.content.get("history_visibility") == "world_readable" else "private"
    result["presence"] = snapshot["presence"]["events"]
    return json_response(result)


@routes.get("/events")
async def events(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    since = query_str(request, "from")
    timeout = query_int(request, "timeout", 30000, minimum=0, maximum=2**31)
    if since is None:
        since = hs.sync.current_token().encode()
    changes = await hs.sync.sync(who, since=since, timeout_ms=timeout, full_state=False, sync_filter=SyncFilter())
    chunk: list[dict[str, Any]] = []
    for kind in ("join", "leave"):
        for room_id, section in changes["rooms"][kind].items():
            chunk += section["timeline"]["events"]
            chunk += [{**event, "room_id": room_id} for event in section.get("ephemeral", {}).get("events", [])]
    chunk += changes["presence"]["events"]
    return json_response({"chunk": chunk, "start": since, "end": changes["next_batch"]})


@routes.get("/events/{event_id}")
async def event_by_id(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    who = await requester(request)
    event_id = request.match_info["event_id"]
    row = (await hs.rooms.store.get_event_rows([event_id])).get(event_id)
    if row is None:
        raise MatrixError("M_NOT_FOUND", "Event not found")
    return json_response(await hs.timeline.event(who, row.event.room_id, event_id))
