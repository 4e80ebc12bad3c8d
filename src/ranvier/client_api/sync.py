"""/sync and the filters it uses."""

from __future__ import annotations

from contextlib import nullcontext

from aiohttp import web

from ranvier.collector import collector_paused
from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import query_bool, query_int, query_str
from ranvier.web.routing import Routes

routes = Routes()

PRESENCE_STATES = ("online", "offline", "unavailable")


@routes.get("/sync")
async def sync(request: web.Request) -> web.Response:
    """GET /sync: initial with no `since`, else what changed since it, long-polled up to
    `timeout` ms. `set_presence` (online when absent) marks the caller online or
    unavailable; offline leaves their presence as it is. `filter` is a stored filter's
    ID or inline JSON (`M_BAD_JSON` when it breaks the schema)."""
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    set_presence = query_str(request, "set_presence", default="online")
    if set_presence not in PRESENCE_STATES:
        raise MatrixError("M_INVALID_PARAM", f"set_presence must be one of {', '.join(PRESENCE_STATES)}")
    sync_filter = await hs.sync.resolve_filter(who.user_id, query_str(request, "filter"))
    since = query_str(request, "since")
    full_state = query_bool(request, "full_state", False)
    timeout_ms = query_int(request, "timeout", 0, minimum=0, maximum=2**31)
    # An initial or full-state sync answers at once, and may be huge: the collector waits
    # until its answer is serialised (and its objects freed).
    with collector_paused() if since is None or full_state else nullcontext():
        answer = json_response(await hs.sync.sync(who, since=since, timeout_ms=timeout_ms, full_state=full_state,
                                                  sync_filter=sync_filter, set_presence=set_presence))
    return answer


def _own_user(request: web.Request, user_id: str) -> None:
    if request.match_info["user_id"] != user_id:
        raise MatrixError("M_FORBIDDEN", "You can only manage your own filters")


@routes.post("/user/{user_id}/filter")
async def create_filter(request: web.Request) -> web.Response:
    """POST /user/{userId}/filter: only one's own; a filter that breaks the spec's schema
    is 400 `M_BAD_JSON` and is not stored; the same definition twice gives the same ID."""
    who = await requester(request, allow_guest=True)
    _own_user(request, who.user_id)
    body = await read_json(request)
    filter_id = await request.app[HOMESERVER].sync.filters.create(who.user_id, body)
    return json_response({"filter_id": filter_id})


@routes.get("/user/{user_id}/filter/{filter_id}")
async def get_filter(request: web.Request) -> web.Response:
    """GET /user/{userId}/filter/{filterId}: a filter the caller uploaded (403 for another user's
    path, 404 for an unknown ID). Guests too."""
    who = await requester(request, allow_guest=True)
    _own_user(request, who.user_id)
    return json_response(await request.app[HOMESERVER].sync.filters.get(who.user_id, request.match_info["filter_id"]))
