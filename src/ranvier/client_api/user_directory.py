"""The user directory: POST /user_directory/search."""

from __future__ import annotations

from aiohttp import web

from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()


@routes.post("/user_directory/search")
async def search(request: web.Request) -> web.Response:
    """POST /user_directory/search: users sharing a joined room with the caller, members of rooms
    with a public join rule, and the caller; never deactivated users; `search_term` required,
    `limit` (10) with `limited`."""
    who = await requester(request)
    body = await read_json(request)
    term = field(body, "search_term", str, required=True)
    limit = field(body, "limit", int, default=10)
    return json_response(await request.app[HOMESERVER].user_directory.search(who.user_id, term, limit))
