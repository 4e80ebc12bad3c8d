"""Leaving rooms, and rejecting invites (server-server API, "Leaving Rooms")."""

from __future__ import annotations

from aiohttp import web

from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.rooms.service import LEAVE
from ranvier.web.app import large_body
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()


@routes.get(f"{FEDERATION}/v1/make_leave/{{room_id}}/{{user_id}}", versions=None)
async def make_leave(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/make_leave/{roomId}/{userId}: a leave template for one of
    the origin's users (403 for another server's user, a server the ACL denies, or a user
    who may not leave; 404 for a room this server is not in)."""
    origin, _ = await signed_request(request)
    return json_response(await federation(request).memberships.make(
        origin, LEAVE, request.match_info["room_id"], request.match_info["user_id"], None))


@routes.put(f"{FEDERATION}/v2/send_leave/{{room_id}}/{{event_id}}", versions=None)
@large_body
async def send_leave(request: web.Request) -> web.Response:
    """PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}: take a signed leave of one of
    the origin's users (400 M_BAD_JSON when it is not that, 403 when refused) and send it on
    to the other servers in the room; answers `{}`."""
    origin, body = await signed_request(request)
    return json_response(await federation(request).memberships.send(
        origin, LEAVE, request.match_info["room_id"], request.match_info["event_id"], body))
