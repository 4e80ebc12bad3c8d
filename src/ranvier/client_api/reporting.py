"""Reporting content: events, rooms and users (POST .../report)."""

from __future__ import annotations

from aiohttp import web

from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()


@routes.post("/rooms/{room_id}/report/{event_id}")
async def report_event(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/report/{eventId}: report an event the caller is joined and able to see
    (else 404); optional `reason` and legacy `score`; kept for the server admins."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request, allow_empty=True)
    reason, score = field(body, "reason", str), field(body, "score", int)
    hs.limits.message.check(who.user_id)
    await hs.reports.report_event(who.user_id, request.match_info["room_id"], request.match_info["event_id"],
                                  reason=reason, score=score)
    return json_response({})


@routes.post("/rooms/{room_id}/report")
async def report_room(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/report: report a room; `reason` required; 404 for an unknown room."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    reason = field(body, "reason", str, required=True)
    hs.limits.message.check(who.user_id)
    await hs.reports.report_room(who.user_id, request.match_info["room_id"], reason=reason)
    return json_response({})


@routes.post("/users/{user_id}/report")
async def report_user(request: web.Request) -> web.Response:
    """POST /users/{userId}/report: report a user; `reason` required; 404 for an unknown local
    user."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    reason = field(body, "reason", str, required=True)
    hs.limits.message.check(who.user_id)
    await hs.reports.report_user(who.user_id, request.match_info["user_id"], reason=reason)
    return json_response({})
