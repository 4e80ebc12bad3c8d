"""Room aliases and the published room directories: /directory/room, /rooms/{roomId}/aliases,
/directory/list/room and /publicRooms (the networks' directories are filled through
client_api/appservice.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field, query_bool, query_int, query_str
from ranvier.web.routing import Routes

routes = Routes()


@routes.get("/directory/room/{room_alias}")
async def resolve_alias(request: web.Request) -> web.Response:
    """GET /directory/room/{roomAlias}: the room ID and servers of a local alias (404 M_NOT_FOUND
    if unknown, after asking the application service whose namespace holds it; remote
    aliases need federation, 404). No token needed."""
    return json_response(await request.app[HOMESERVER].directory.resolve(request.match_info["room_alias"]))


@routes.put("/directory/room/{room_alias}")
async def create_alias(request: web.Request) -> web.Response:
    """PUT /directory/room/{roomAlias}: a new local alias for a room the caller is in; 409
    M_UNKNOWN when taken, 400 M_INVALID_PARAM for a remote or malformed alias, 400
    M_EXCLUSIVE for an alias another application service's exclusive namespace holds."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    room_id = field(body, "room_id", str, required=True)
    hs.appservices.check_alias_not_reserved(request.match_info["room_alias"], who.app_service)
    await hs.directory.create_alias(who.user_id, request.match_info["room_alias"], room_id)
    return json_response({})


@routes.delete("/directory/room/{room_alias}")
async def delete_alias(request: web.Request) -> web.Response:
    """DELETE /directory/room/{roomAlias}: by the alias's creator, a member with the power to send
    `m.room.canonical_alias`, or a server admin (else 403); the room's canonical alias event is
    updated when the caller may."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    await hs.directory.delete_alias(who.user_id, request.match_info["room_alias"])
    return json_response({})


@routes.get("/rooms/{room_id}/aliases")
async def local_aliases(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/aliases: the local aliases of a room, to its members, to anyone for a
    world-readable room, and to server admins; else 403."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    aliases = await hs.directory.local_aliases(who.user_id, request.match_info["room_id"])
    return json_response({"aliases": aliases})


@routes.get("/directory/list/room/{room_id}")
async def get_visibility(request: web.Request) -> web.Response:
    """GET /directory/list/room/{roomId}: `public` or `private` in the published room directory
    (404 for an unknown room). No token needed."""
    visibility = await request.app[HOMESERVER].directory.visibility(request.match_info["room_id"])
    return json_response({"visibility": visibility})


@routes.put("/directory/list/room/{room_id}")
async def set_visibility(request: web.Request) -> web.Response:
    """PUT /directory/list/room/{roomId}: publish or unpublish a room; members who may set the
    canonical alias, or server admins (else 403)."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request, allow_empty=True)
    visibility = field(body, "visibility", str, default="public")
    await hs.directory.set_visibility(who.user_id, request.match_info["room_id"], visibility)
    return json_response({})


def _other_server(request: web.Request, server: str | None) -> str | None:
    """The server whose directory is asked for, when it is another one (which needs
    federation on, else 400 M_INVALID_PARAM)."""
    hs = request.app[HOMESERVER]
    if server is None or server == hs.config.server_name:
        return None
    if hs.directory.remote_public_rooms is None:
        raise MatrixError("M_INVALID_PARAM", "This server does not federate; it only lists its own rooms")
    return server


@routes.get("/publicRooms")
async def public_rooms(request: web.Request) -> web.Response:
    """GET /publicRooms: the rooms published in the server's own directory (not those only in
    an application service network's), most joined members first, then room ID; `limit`,
    `since` (keyset tokens, stable while rooms are published); `server`, another server's list
    (asked of it, with federation on; else 400); as the federation API's GET,
    `include_all_networks` and `third_party_instance_id` (see POST). No token needed."""
    hs = request.app[HOMESERVER]
    server = _other_server(request, query_str(request, "server"))
    limit, since = query_int(request, "limit", 0, minimum=0), query_str(request, "since")
    include_all, instance = (query_bool(request, "include_all_networks", False),
                             query_str(request, "third_party_instance_id"))
    if server is not None:
        body: dict[str, Any] = {"limit": limit, "since": since}
        if include_all:
            body["include_all_networks"] = True
        if instance is not None:
            body["third_party_instance_id"] = instance
        return json_response(await hs.directory.remote_public_rooms(server, body))
    return json_response(await hs.directory.public_rooms(limit=limit, since=since, include_all_networks=include_all,
                                                         third_party_instance_id=instance))


@routes.post("/publicRooms")
async def search_public_rooms(request: web.Request) -> web.Response:
    """POST /publicRooms: as GET, with `filter.generic_search_term` over name, topic and canonical
    alias and `filter.room_types` (`null` for untyped rooms); `include_all_networks: true` adds
    the rooms of every application service network's directory, `third_party_instance_id`
    (an `instance_id` of /thirdparty/protocols) lists one network's instead (an unknown one is
    an empty page; not of the form `service|network`, or with `include_all_networks`, 400
    M_INVALID_PARAM)."""
    hs = request.app[HOMESERVER]
    await requester(request)
    server = _other_server(request, query_str(request, "server"))
    body = await read_json(request, allow_empty=True)
    if server is not None:
        return json_response(await hs.directory.remote_public_rooms(server, body))
    limit = field(body, "limit", int, default=0)
    if limit < 0:
        raise MatrixError("M_INVALID_PARAM", "limit must not be negative")
    search_filter = field(body, "filter", dict, default={})
    term = field(search_filter, "generic_search_term", str)
    room_types: list[Any] | None = field(search_filter, "room_types", list)
    if room_types is not None and any(t is not None and not isinstance(t, str) for t in room_types):
        raise MatrixError("M_BAD_JSON", "filter.room_types must hold strings or null")
    page = await hs.directory.public_rooms(
        limit=limit, since=field(body, "since", str), search_term=term, room_types=room_types,
        include_all_networks=field(body, "include_all_networks", bool, default=False),
        third_party_instance_id=field(body, "third_party_instance_id", str),
    )
    return json_response(page)
