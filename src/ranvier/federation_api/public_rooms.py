"""This server's published rooms for other servers (server-server API, "Public Room Directory")."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.federation_api.common import FEDERATION, signed_request
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response
from ranvier.web.params import field, query_bool, query_int, query_str
from ranvier.web.routing import Routes

routes = Routes()


@routes.get(f"{FEDERATION}/v1/publicRooms", versions=None)
async def public_rooms(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/publicRooms: a page of the published rooms (`limit`,
    `since`), as the client API's list: the server's own directory, with every application
    service network's too when `include_all_networks`, or one network's for a
    `third_party_instance_id` (an unknown one is an empty page; a malformed one, or both
    at once, 400 M_INVALID_PARAM)."""
    await signed_request(request)
    page = await request.app[HOMESERVER].directory.public_rooms(
        limit=query_int(request, "limit", 0, minimum=0), since=query_str(request, "since"),
        include_all_networks=query_bool(request, "include_all_networks", False),
        third_party_instance_id=query_str(request, "third_party_instance_id"))
    return json_response(page)


@routes.post(f"{FEDERATION}/v1/publicRooms", versions=None)
async def search_public_rooms(request: web.Request) -> web.Response:
    """POST /_matrix/federation/v1/publicRooms: as GET, with `filter.generic_search_term` and
    `filter.room_types`, the network fields in the body."""
    _, body = await signed_request(request)
    search = field(body, "filter", dict, default={})
    room_types = field(search, "room_types", list)
    if room_types is not None and not all(t is None or isinstance(t, str) for t in room_types):
        raise MatrixError("M_BAD_JSON", "filter.room_types must list strings or null")
    page = await request.app[HOMESERVER].directory.public_rooms(
        limit=field(body, "limit", int), since=field(body, "since", str),
        search_term=field(search, "generic_search_term", str), room_types=room_types,
        include_all_networks=field(body, "include_all_networks", bool, default=False),
        third_party_instance_id=field(body, "third_party_instance_id", str))
    return json_response(page)
