"""Presence: GET/PUT /presence/{userId}/status."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()


@routes.get("/presence/{user_id}/status")
async def get_presence(request: web.Request) -> web.Response:
    """GET /presence/{userId}/status: one's own presence, or that of a user sharing a joined room
    with the caller (else 403)."""
    who = await requester(request)
    return json_response(await request.app[HOMESERVER].presence.get(who.user_id, request.match_info["user_id"]))


@routes.put("/presence/{user_id}/status")
async def set_presence(request: web.Request) -> web.Response:
    """PUT /presence/{userId}/status: one's own `presence` (`online`, `unavailable`, `offline`) and
    `status_msg`; others sharing a room see it in /sync."""
    who = await requester(request)
    if who.user_id != request.match_info["user_id"]:
        raise MatrixError("M_FORBIDDEN", "You may only set your own presence")
    body = await read_json(request)
    await request.app[HOMESERVER].presence.set_status(
        who.user_id, field(body, "presence", str, required=True), field(body, "status_msg", str)
    )
    return json_response({})
