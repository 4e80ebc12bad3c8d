"""A space of this server for other servers (server-server API, "Spaces")."""

from __future__ import annotations

from aiohttp import web

from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.web.http import json_response
from ranvier.web.params import query_bool
from ranvier.web.routing import Routes

routes = Routes()


@routes.get(f"{FEDERATION}/v1/hierarchy/{{room_id}}", versions=None)
async def hierarchy(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/hierarchy/{roomId}: the room's entry with its `m.space.child`
    events (only suggested ones with `suggested_only`), the entries of its children this
    server is in and the origin may see (`children`), and the others it is in
    (`inaccessible_children`); not paginated. A room is seen by a server when it is
    world-readable, public or knock, when one of the server's users is joined or invited, or
    when a restricted join rule names a room one of them is joined to; never against the
    room's server ACL. 404 M_NOT_FOUND for a room this server is not in or the origin may
    not see."""
    origin, _ = await signed_request(request)
    answer = await federation(request).hierarchy.answer(origin, request.match_info["room_id"],
                                                         query_bool(request, "suggested_only", False))
    return json_response(answer)
