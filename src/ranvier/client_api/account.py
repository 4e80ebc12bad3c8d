"""Account management: /account/whoami, /account/password, /account/deactivate."""

from __future__ import annotations

from aiohttp import web

from ranvier.client_api.login import PASSWORD_FLOWS
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()


@routes.get("/account/whoami")
async def whoami(request: web.Request) -> web.Response:
    who = await requester(request, allow_guest=True)
    return json_response({"user_id": who.user_id, "device_id": who.device_id, "is_guest": who.is_guest})


@routes.post("/account/password")
async def change_password(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    new_password = field(body, "new_password", str, required=True)
    logout_devices = field(body, "logout_devices", bool, default=True)
    hs.users.check_password_strength(new_password)
    await hs.users.uia.authenticate(body.get("auth"), flows=PASSWORD_FLOWS, operation="password", user_id=who.user_id)
    await hs.users.change_password(who, new_password, logout_devices=logout_devices)
    return json_response({})


@routes.post("/account/deactivate")
async def deactivate(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request, allow_empty=True)
    erase = field(body, "erase", bool, default=False)
    await hs.users.uia.authenticate(body.get("auth"), flows=PASSWORD_FLOWS, operation="deactivate", user_id=who.user_id)
    await hs.users.deactivate(who.user_id)
    await hs.rooms.leave_all_rooms(who.user_id)
    if erase:
        await hs.erasure.erase(who.user_id)
    return json_response({"id_server_unbind_result": "no-support"})
