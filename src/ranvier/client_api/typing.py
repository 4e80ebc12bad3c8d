"""Typing notifications: PUT /rooms/{roomId}/typing/{userId}."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()


@routes.put("/rooms/{room_id}/typing/{user_id}")
async def set_typing(request: web.Request) -> web.Response:
    """PUT /rooms/{roomId}/typing/{userId}: one's own typing state in a room one is joined to (403
    otherwise); `timeout` in ms, at most 120 s. Guests too."""
    who = await requester(request, allow_guest=True)
    if who.user_id != request.match_info["user_id"]:
        raise MatrixError("M_FORBIDDEN", "You may only set your own typing state")
    body = await read_json(request)
    typing = field(body, "typing", bool, required=True)
    timeout = field(body, "timeout", int)
    if timeout is not None and timeout < 0:
        raise MatrixError("M_INVALID_PARAM", "timeout must not be negative")
    await request.app[HOMESERVER].typing.set_typing(who.user_id, request.match_info["room_id"], typing, timeout)
    return json_response({})
