"""Account management: /account/whoami, /account/password, /account/deactivate."""

from __future__ import annotations

from aiohttp import web

from ranvier.client_api.login import PASSWORD_FLOWS
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester, user_interactive_auth
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()


@routes.get("/account/whoami")
async def whoami(request: web.Request) -> web.Response:
    """GET /account/whoami: the caller's user ID, device ID and whether it is a guest."""
    who = await requester(request, allow_guest=True)
    return json_response({"user_id": who.user_id, "device_id": who.device_id, "is_guest": who.is_guest})


@routes.post("/account/password")
async def change_password(request: web.Request) -> web.Response:
    """POST /account/password: a new password after re-authentication with the current one
    (UIA session bound to this request); other devices are logged out unless
    `logout_devices` is false. Guests: 403 M_GUEST_ACCESS_FORBIDDEN."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    new_password = field(body, "new_password", str, required=True)
    logout_devices = field(body, "logout_devices", bool, default=True)
    hs.users.check_password_strength(new_password)
    await user_interactive_auth(request, body, who, flows=PASSWORD_FLOWS, operation="password")
    await hs.users.change_password(who, new_password, logout_devices=logout_devices)
    return json_response({})


@routes.post("/account/deactivate")
async def deactivate(request: web.Request) -> web.Response:
    """POST /account/deactivate: deactivate for good after re-authentication (UIA session
    bound to this request); the account leaves its rooms. With `erase: true` its profile and
    account data are deleted and its events are served redacted to users who were not
    joined when they were sent. Open to suspended accounts."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request, allow_empty=True)
    erase = field(body, "erase", bool, default=False)
    await user_interactive_auth(request, body, who, flows=PASSWORD_FLOWS, operation="deactivate")
    await hs.users.deactivate(who.user_id)
    await hs.rooms.leave_all_rooms(who.user_id)
    if erase:
        await hs.erasure.erase(who.user_id)
    return json_response({"id_server_unbind_result": "no-support"})
