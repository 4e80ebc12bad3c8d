"""Account data, global and per room, and room tags (stored as the m.tag room account data)."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.identifiers import is_valid_room_id
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.routing import Routes

routes = Routes()


async def _owner(request: web.Request) -> str:
    """Account data is private: only its owner may read or write it."""
    who = await requester(request)
    if who.user_id != request.match_info["user_id"]:
        raise MatrixError("M_FORBIDDEN", "You may only access your own account data")
    return who.user_id


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError("M_INVALID_PARAM", f"{room_id} is not a room ID")
    return room_id


@routes.get("/user/{user_id}/account_data/{type}")
async def get_account_data(request: web.Request) -> web.Response:
    """GET /user/{userId}/account_data/{type}: the caller's own global account data of that type
    (403 for another user, 404 if never set)."""
    user_id = await _owner(request)
    return json_response(await request.app[HOMESERVER].account_data.get(user_id, request.match_info["type"]))


@routes.put("/user/{user_id}/account_data/{type}")
async def put_account_data(request: web.Request) -> web.Response:
    """PUT /user/{userId}/account_data/{type}: a JSON object; the caller's own only; `m.fully_read`
    and `m.push_rules` are refused (405 M_BAD_JSON: they have their own APIs);
    `m.ignored_user_list` must hold user IDs."""
    user_id = await _owner(request)
    content = await read_json(request)
    await request.app[HOMESERVER].account_data.put_by_client(user_id, request.match_info["type"], content)
    return json_response({})


@routes.get("/user/{user_id}/rooms/{room_id}/account_data/{type}")
async def get_room_account_data(request: web.Request) -> web.Response:
    """GET /user/{userId}/rooms/{roomId}/account_data/{type}: the caller's own account data for one
    room (403 for another user, 404 if never set)."""
    user_id = await _owner(request)
    room_id = _room_id(request)
    return json_response(await request.app[HOMESERVER].account_data.get(user_id, request.match_info["type"], room_id))


@routes.put("/user/{user_id}/rooms/{room_id}/account_data/{type}")
async def put_room_account_data(request: web.Request) -> web.Response:
    """PUT /user/{userId}/rooms/{roomId}/account_data/{type}: as the global PUT, for one room."""
    user_id = await _owner(request)
    room_id = _room_id(request)
    content = await read_json(request)
    await request.app[HOMESERVER].account_data.put_by_client(user_id, request.match_info["type"], content, room_id)
    return json_response({})


@routes.get("/user/{user_id}/rooms/{room_id}/tags")
async def get_tags(request: web.Request) -> web.Response:
    """GET /user/{userId}/rooms/{roomId}/tags: the caller's tags on a room (the `m.tag` room
    account data)."""
    user_id = await _owner(request)
    return json_response({"tags": await request.app[HOMESERVER].account_data.tags(user_id, _room_id(request))})


@routes.put("/user/{user_id}/rooms/{room_id}/tags/{tag}")
async def put_tag(request: web.Request) -> web.Response:
    """PUT /user/{userId}/rooms/{roomId}/tags/{tag}: a JSON object body (`{}` is fine),
    whose `order`, when present, must be a number (not null)."""
    user_id = await _owner(request)
    room_id = _room_id(request)
    info = await read_json(request)
    await request.app[HOMESERVER].account_data.set_tag(user_id, room_id, request.match_info["tag"], info)
    return json_response({})


@routes.delete("/user/{user_id}/rooms/{room_id}/tags/{tag}")
async def delete_tag(request: web.Request) -> web.Response:
    """DELETE /user/{userId}/rooms/{roomId}/tags/{tag}: remove one of the caller's tags; removing
    an absent tag succeeds."""
    user_id = await _owner(request)
    await request.app[HOMESERVER].account_data.delete_tag(user_id, _room_id(request), request.match_info["tag"])
    return json_response({})
