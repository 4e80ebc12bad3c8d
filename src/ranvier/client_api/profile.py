"""Profiles: the whole profile, displayname, avatar_url and extended fields (Matrix 1.16)."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import refuse_if_suspended, requester
from ranvier.web.http import json_response, read_json
from ranvier.web.routing import Routes

routes = Routes()


async def _own_profile(request: web.Request) -> tuple[str, str]:
    """(user_id, key) of a profile change: only the user may change their own profile, a
    guest only its displayname, a suspended account nothing."""
    user_id, key = request.match_info["user_id"], request.match_info["key"]
    who = await requester(request, allow_guest=key == "displayname")
    if who.user_id != user_id:
        raise MatrixError("M_FORBIDDEN", "You may only change your own profile")
    refuse_if_suspended(who, "change your profile")
    return user_id, key


@routes.get("/profile/{user_id}")
async def get_profile(request: web.Request) -> web.Response:
    """GET /profile/{userId}: a local user's whole profile, no token needed; 404 if unknown."""
    return json_response(await request.app[HOMESERVER].profiles.get(request.match_info["user_id"]))


@routes.get("/profile/{user_id}/{key}")
async def get_profile_field(request: web.Request) -> web.Response:
    """GET /profile/{userId}/{keyName}: one field of a local user's profile; 404 if unset."""
    key = request.match_info["key"]
    value = await request.app[HOMESERVER].profiles.get_field(request.match_info["user_id"], key)
    return json_response({key: value})


@routes.put("/profile/{user_id}/{key}")
async def set_profile_field(request: web.Request) -> web.Response:
    """PUT /profile/{userId}/{keyName}: set one's own profile field (`avatar_url` must be an
    mxc:// URI, null or "" clears it); guests only `displayname`; suspended accounts 403
    M_USER_SUSPENDED."""
    user_id, key = await _own_profile(request)
    body = await read_json(request)
    if key not in body:
        raise MatrixError("M_MISSING_PARAM", f"The body must hold the field {key}")
    await request.app[HOMESERVER].profiles.set_field(user_id, key, body[key])
    return json_response({})


@routes.delete("/profile/{user_id}/{key}")
async def delete_profile_field(request: web.Request) -> web.Response:
    """DELETE /profile/{userId}/{keyName}: remove one's own profile field; guests only
    `displayname`; suspended accounts 403 M_USER_SUSPENDED."""
    user_id, key = await _own_profile(request)
    await request.app[HOMESERVER].profiles.delete_field(user_id, key)
    return json_response({})
