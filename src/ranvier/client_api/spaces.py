"""Spaces: GET /_matrix/client/v1/rooms/{roomId}/hierarchy."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response
from ranvier.web.params import query_str
from ranvier.web.routing import Routes

routes = Routes()


def _flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter; `True`/`False` too, as some clients (matrix-nio) send them."""
    value = request.query.get(name)
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise MatrixError("M_INVALID_PARAM", f"Query parameter {name} must be true or false")


def _optional_int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise MatrixError("M_INVALID_PARAM", f"Query parameter {name} must be an integer") from None


@routes.get("/rooms/{room_id}/hierarchy", versions=("v1",))
async def hierarchy(request: web.Request) -> web.Response:
    """GET /v1/rooms/{roomId}/hierarchy: the space's rooms depth-first in the spec's child order
    (`suggested_only`, `max_depth` up to 32, `limit` up to 100, `from`); rooms the caller may
    neither see nor join are left out. With federation, a room this server is not in is asked
    of the servers its `m.space.child` event names (and its room ID's server; a space the
    caller is only invited to, of the inviter's server), answers kept 5 minutes; rooms no
    server answers for, or that it calls inaccessible, are left out."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    result = await hs.hierarchy.hierarchy(
        who.user_id, request.match_info["room_id"], suggested_only=_flag(request, "suggested_only"),
        max_depth=_optional_int(request, "max_depth"), limit=_optional_int(request, "limit"),
        from_token=query_str(request, "from"),
    )
    return json_response(result)
