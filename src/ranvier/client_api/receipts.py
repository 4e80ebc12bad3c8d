"""Receipts and read markers: POST /rooms/{roomId}/receipt/... and /rooms/{roomId}/read_markers."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()

MARKERS = ("m.fully_read", "m.read", "m.read.private")


@routes.post("/rooms/{room_id}/receipt/{receipt_type}/{event_id}")
async def send_receipt(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/receipt/{receiptType}/{eventId}: `m.read`, `m.read.private` or
    `m.fully_read` on an event of a room the caller is joined to; `thread_id` `main` or a thread
    root; a receipt never moves back; unread counts are updated before /sync is woken. Guests
    too."""
    who = await requester(request, allow_guest=True)
    body = await read_json(request, allow_empty=True)
    thread_id = body.get("thread_id")
    if thread_id is not None and (not isinstance(thread_id, str) or not thread_id):
        raise MatrixError("M_INVALID_PARAM", "thread_id must be a non-empty string")
    await request.app[HOMESERVER].receipts.send(
        who.user_id, request.match_info["room_id"], request.match_info["receipt_type"], request.match_info["event_id"],
        thread_id,
    )
    return json_response({})


@routes.post("/rooms/{room_id}/read_markers")
async def set_read_markers(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/read_markers: the fully-read marker and/or read receipts at once; at
    least one of `m.fully_read`, `m.read`, `m.read.private`. Guests too."""
    who = await requester(request, allow_guest=True)
    body = await read_json(request)
    markers = {name: event_id for name in MARKERS if (event_id := field(body, name, str)) is not None}
    if not markers:
        raise MatrixError("M_MISSING_PARAM", f"Give at least one of {', '.join(MARKERS)}")
    await request.app[HOMESERVER].receipts.set_read_markers(who.user_id, request.match_info["room_id"], markers)
    return json_response({})
