"""Queries about this server's aliases and users (server-server API, "Querying for information")."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.identifiers import InvalidIdentifier, domain_of, parse_user_id, split_id
from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response
from ranvier.web.params import query_str
from ranvier.web.routing import Routes

routes = Routes()

PROFILE_FIELDS = ("displayname", "avatar_url")


@routes.get(f"{FEDERATION}/v1/query/directory", versions=None)
async def query_directory(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/query/directory?room_alias=: the room of one of this
    server's aliases and servers in it (404 for an unknown alias or one of another server)."""
    await signed_request(request)
    hs = request.app[HOMESERVER]
    alias = query_str(request, "room_alias", required=True)
    try:
        local = split_id(alias, "#")[1] == hs.config.server_name
    except InvalidIdentifier:
        raise MatrixError("M_INVALID_PARAM", "room_alias is not a room alias") from None
    room_id = await hs.rooms.store.room_of_alias(alias) if local else None
    if room_id is None:
        raise MatrixError("M_NOT_FOUND", "Room alias not found")
    head = await hs.rooms.head(room_id)
    servers = [hs.config.server_name, *sorted({domain_of(u) for u in head.joined} - {hs.config.server_name, None})]
    return json_response({"room_id": room_id, "servers": servers})


@routes.get(f"{FEDERATION}/v1/query/profile", versions=None)
async def query_profile(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/query/profile?user_id=&field=: a local user's display
    name and avatar (only `field`, `displayname` or `avatar_url`, when given; 400 for
    another field); 404 for an unknown user or one of another server."""
    origin, _ = await signed_request(request)
    hs = request.app[HOMESERVER]
    user_id = query_str(request, "user_id", required=True)
    wanted = query_str(request, "field")
    if wanted is not None and wanted not in PROFILE_FIELDS:
        raise MatrixError("M_INVALID_PARAM", "field must be displayname or avatar_url")
    try:
        parse_user_id(user_id)
    except InvalidIdentifier:
        raise MatrixError("M_INVALID_PARAM", "user_id is not a user ID") from None
    profile = await hs.users.store.get_profile(user_id) if domain_of(user_id) == federation(request).server_name \
        else None
    if profile is None:
        raise MatrixError("M_NOT_FOUND", "User not found")
    values = dict(zip(PROFILE_FIELDS, profile))
    return json_response({key: value for key, value in values.items()
                          if value is not None and (wanted is None or key == wanted)})
