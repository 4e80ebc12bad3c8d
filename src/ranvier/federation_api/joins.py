"""Joining rooms (server-server API, "Joining Rooms"): this server as the resident of a room
another server's user joins."""

from __future__ import annotations

from aiohttp import web

from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.rooms.service import JOIN
from ranvier.web.app import large_body
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()


@routes.get(f"{FEDERATION}/v1/make_join/{{room_id}}/{{user_id}}", versions=None)
async def make_join(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/make_join/{roomId}/{userId}: a join template for one of the
    origin's users (403 for another server's user, for a server the room's ACL denies, or
    when the join rules refuse them; 404 for a room this server is not in; 400
    M_INCOMPATIBLE_ROOM_VERSION when the room's version is not among `ver`)."""
    origin, _ = await signed_request(request)
    versions = request.query.getall("ver", ["1"])
    return json_response(await federation(request).memberships.make(
        origin, JOIN, request.match_info["room_id"], request.match_info["user_id"], versions))


@routes.put(f"{FEDERATION}/v2/send_join/{{room_id}}/{{event_id}}", versions=None)
@large_body
async def send_join(request: web.Request) -> web.Response:
    """PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}: take a signed join of one of
    the origin's users (400 M_BAD_JSON when it is not that, 403 when the room refuses it),
    countersigned for a restricted join this server authorised, and send it on to the
    other servers in the room. Answers the state before it and the auth chain; sending
    the same join again gets the same answer."""
    origin, body = await signed_request(request)
    return json_response(await federation(request).memberships.send(
        origin, JOIN, request.match_info["room_id"], request.match_info["event_id"], body))
