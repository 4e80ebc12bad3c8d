"""Profiles of the draft: GET/PUT /profile/$user_id/displayname and /avatar_url, for local
users. A change is announced in the user's rooms as today's API does (a new member event)."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.legacy_api.ids import user_from_draft
from ranvier.legacy_api.routing import DraftRoutes, done
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field

routes = DraftRoutes()


async def _get(request: web.Request, key: str) -> web.Response:
    hs = request.app[HOMESERVER]
    await requester(request)
    user_id = user_from_draft(request.match_info["user_id"], hs.config.server_name)
    return json_response({key: await hs.profiles.get_field(user_id, key)})


async def _set(request: web.Request, key: str) -> web.Response:
    hs = request.app[HOMESERVER]
    who = await requester(request)
    if user_from_draft(request.match_info["user_id"], hs.config.server_name) != who.user_id:
        raise MatrixError("M_FORBIDDEN", "You may only change your own profile")
    body = await read_json(request)
    await hs.profiles.set_field(who.user_id, key, field(body, key, str, required=True))
    return done()


@routes.get("/profile/{user_id}/displayname")
async def get_displayname(request: web.Request) -> web.Response:
    """GET /profile/$user_id/displayname: {displayname} of a local user; M_NOT_FOUND for an
    unknown user or one without a display name."""
    return await _get(request, "displayname")


@routes.put("/profile/{user_id}/displayname")
async def set_displayname(request: web.Request) -> web.Response:
    """PUT /profile/$user_id/displayname {displayname}: one's own only; the same name again
    changes nothing."""
    return await _set(request, "displayname")


@routes.get("/profile/{user_id}/avatar_url")
async def get_avatar_url(request: web.Request) -> web.Response:
    """GET /profile/$user_id/avatar_url: {avatar_url} of a local user; M_NOT_FOUND for an
    unknown user or one without an avatar."""
    return await _get(request, "avatar_url")


@routes.put("/profile/{user_id}/avatar_url")
async def set_avatar_url(request: web.Request) -> web.Response:
    """PUT /profile/$user_id/avatar_url {avatar_url}: one's own only. Avatars are mxc://
    URIs of the media repository today; a web URL is refused with M_BAD_JSON."""
    return await _set(request, "avatar_url")
