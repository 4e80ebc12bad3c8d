"""Relations: the child events of an event (`/relations`) and a room's threads (`/threads`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError, not_found
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response
from ranvier.web.params import query_bool, query_int, query_str
from ranvier.web.routing import Routes

routes = Routes()

V1 = ("v1",)


@routes.get("/rooms/{room_id}/relations/{event_id}", versions=V1)
@routes.get("/rooms/{room_id}/relations/{event_id}/{rel_type}", versions=V1)
@routes.get("/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}", versions=V1)
async def relations(request: web.Request) -> web.Response:
    """GET /v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]: the events relating to
    one the caller may see (else 404), newest first (`dir=b`) or oldest first;
    `from`/`to`/`limit` page, `recurse` follows relations of relations up to 3 levels
    (`recursion_depth` says how deep it went); history visibility and ignored users apply."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id = request.match_info["room_id"]
    direction = query_str(request, "dir", default="b")
    if direction not in ("b", "f"):
        raise MatrixError("M_INVALID_PARAM", "dir must be b or f")
    limit = query_int(request, "limit", 20, minimum=1)
    recurse = query_bool(request, "recurse", False) if "recurse" in request.query else None
    try:
        history = await hs.timeline.reader_history(room_id, who.user_id)
    except MatrixError as exc:
        if exc.errcode != "M_FORBIDDEN":
            raise
        raise not_found("Event not found") from None  # the spec answers 404 for events one may not see
    page = await hs.relations.children(
        room_id, request.match_info["event_id"], who.user_id, history,
        rel_type=request.match_info.get("rel_type"), event_type=request.match_info.get("event_type"),
        recurse=recurse, direction=direction, from_token=query_str(request, "from"),
        to_token=query_str(request, "to"), limit=limit,
    )
    body: dict[str, Any] = {"chunk": await hs.timeline.serialize(page.rows, who)}
    if page.next_batch is not None:
        body["next_batch"] = page.next_batch
    if page.prev_batch is not None:
        body["prev_batch"] = page.prev_batch
    if page.recursion_depth is not None:
        body["recursion_depth"] = page.recursion_depth
    return json_response(body)


@routes.get("/rooms/{room_id}/threads", versions=V1)
async def threads(request: web.Request) -> web.Response:
    """GET /v1/rooms/{roomId}/threads: the room's thread roots the caller may see, the thread with
    the latest reply first; `include=participated` keeps the threads the caller started or
    replied to; `from`/`limit` page."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id = request.match_info["room_id"]
    include = query_str(request, "include", default="all")
    if include not in ("all", "participated"):
        raise MatrixError("M_INVALID_PARAM", "include must be all or participated")
    limit = query_int(request, "limit", 20, minimum=1)
    history = await hs.timeline.reader_history(room_id, who.user_id)
    roots, next_batch = await hs.relations.threads(
        room_id, who.user_id, history, participated=include == "participated",
        from_token=query_str(request, "from"), limit=limit,
    )
    body: dict[str, Any] = {"chunk": await hs.timeline.serialize(roots, who)}
    if next_batch is not None:
        body["next_batch"] = next_batch
    return json_response(body)
