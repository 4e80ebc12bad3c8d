"""Knocking on rooms (server-server API, "Knocking upon a room")."""

from __future__ import annotations

from aiohttp import web

from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.rooms.service import KNOCK
from ranvier.web.app import large_body
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()


@routes.get(f"{FEDERATION}/v1/make_knock/{{room_id}}/{{user_id}}", versions=None)
async def make_knock(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/make_knock/{roomId}/{userId}: a knock template for one of
    the origin's users (403 for another server's user, a server the ACL denies, or when the
    join rule allows no knocking; 404 for a room this server is not in; 400
    M_INCOMPATIBLE_ROOM_VERSION when the room's version is not among `ver`)."""
    origin, _ = await signed_request(request)
    versions = request.query.getall("ver", ["1"])
    return json_response(await federation(request).memberships.make(
        origin, KNOCK, request.match_info["room_id"], request.match_info["user_id"], versions))


@routes.put(f"{FEDERATION}/v1/send_knock/{{room_id}}/{{event_id}}", versions=None)
@large_body
async def send_knock(request: web.Request) -> web.Response:
    """PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}: take a signed knock of one of
    the origin's users (400 M_BAD_JSON when it is not that, 403 when refused), send it on,
    and answer the room's stripped state (`knock_room_state`)."""
    origin, body = await signed_request(request)
    return json_response(await federation(request).memberships.send(
        origin, KNOCK, request.match_info["room_id"], request.match_info["event_id"], body))
