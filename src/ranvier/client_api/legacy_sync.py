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
    """GET /initialSync: every room the user is invited to or joined (and left, with
    `archived=true`), each with its latest `limit` messages and its state; `end` is a
    stream token for /events and /rooms/{roomId}/messages."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    limit = query_int(request, "limit", 10, minimum=0, maximum=1000)
    archived = query_bool(request, "archived", False)
    snapshot = await hs.sync.sync(who, since=None, timeout_ms=0, full_state=False,
                                  sync_filter=_limited_filter(limit, archived), room_ids_in_events=True)
    end = snapshot["next_batch"]
    rooms = [await _room_snapshot(request, who, room_id, membership, section, end)
             for kind, membership in (("join", "join"), ("invite", "invite"), ("leave", "leave"))
             for room_id, section in snapshot["rooms"][kind].items()]
    return json_response({"end": end, "rooms": rooms, "presence": snapshot["presence"]["events"],
                          "account_data": snapshot["account_data"]["events"]})


@routes.get("/rooms/{room_id}/initialSync")
async def room_initial_sync(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/initialSync: the latest `limit` messages (oldest first), the
    state with the caller's own membership, receipts, presence and room account data.
    A member sees the room now; a former member up to and with their leave (its state
    then, no receipts or presence); anyone else only a world-readable room (else 403)."""
    who = await requester(request, allow_guest=True)
    limit = query_int(request, "limit", 10, minimum=0, maximum=1000)
    snapshot = await request.app[HOMESERVER].legacy_sync.room_snapshot(who, request.match_info["room_id"], limit)
    return json_response(snapshot)


@routes.get("/events")
async def events(request: web.Request) -> web.Response:
    """GET /events: every event after `from` (the present when absent), in stream order,
    none skipped (at most 100 room events per answer; `end` continues after the last),
    long-polled for `timeout` ms. With `room_id`, that room only: its members, or anyone
    when it is world-readable (else 403), which is how a room is previewed."""
    who = await requester(request, allow_guest=True)
    result = await request.app[HOMESERVER].legacy_sync.events(
        who, since=query_str(request, "from"), timeout_ms=query_int(request, "timeout", 30000, minimum=0, maximum=2**31),
        room_id=query_str(request, "room_id"),
    )
    return json_response(result)


@routes.get("/events/{event_id}")
async def event_by_id(request: web.Request) -> web.Response:
    """GET /events/{eventId}: one event, if the caller may see it (else 404)."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    event_id = request.match_info["event_id"]
    row = (await hs.rooms.store.get_event_rows([event_id])).get(event_id)
    if row is None:
        raise MatrixError("M_NOT_FOUND", "Event not found")
    return json_response(await hs.timeline.event(who, row.event.room_id, event_id))
