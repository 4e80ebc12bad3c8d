"""Room summary (Matrix 1.15, MSC3266): GET /_matrix/client/v1/room_summary/{roomIdOrAlias}."""

from __future__ import annotations

from aiohttp import web

from ranvier.client_api.membership import resolve_room
from ranvier.errors import MatrixError
from ranvier.events.identifiers import is_valid_server_name
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import access_token, requester
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()


@routes.get("/room_summary/{room_id_or_alias}", versions=("v1",))
async def room_summary(request: web.Request) -> web.Response:
    """GET /v1/room_summary/{roomIdOrAlias}: name, topic, avatar, canonical alias, member
    count, join rule, guest access, world-readability, type, version, encryption and
    allowed rooms of a local room, by ID or local alias. With an access token (guests
    too): for members, invitees, and rooms they could join or knock on, with their
    `membership` ("leave" when they have none). Without a token: only rooms that are
    public, knock or world-readable. Anything else, unknown aliases and rooms this
    server is not in, is 404 `M_NOT_FOUND` (rooms elsewhere need federation: `via`,
    which must name servers, is accepted and not used)."""
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True) if access_token(request) else None
    for server in request.query.getall("via", []):
        if not is_valid_server_name(server):
            raise MatrixError("M_INVALID_PARAM", f"via must name servers, not {server!r}")
    room_id, _ = await resolve_room(request, request.match_info["room_id_or_alias"])
    return json_response(await hs.hierarchy.summary(who.user_id if who else None, room_id))
