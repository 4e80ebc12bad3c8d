"""Logging in and out: /login (password and token), /logout, /refresh, /login/get_token."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.users.service import password_credentials
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import client_ip, json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import STABLE, Routes

routes = Routes()

PASSWORD_FLOWS = [["m.login.password"]]


@routes.get("/login")
async def login_flows(request: web.Request) -> web.Response:
    return json_response({"flows": [{"type": "m.login.password"}, {"type": "m.login.token", "get_login_token": True}]})


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    body = await read_json(request)
    ip = client_ip(request)
    hs.limits.login.check(f"ip:{ip}")
    login_type = field(body, "type", str, required=True)
    if login_type == "m.login.password":
        user, password = password_credentials(body)
        user_id = await hs.users.check_password_login(user, password, ip)
    elif login_type == "m.login.token":
        token = field(body, "token", str, required=True)
        user_id = await hs.users.tokens.consume_login_token(token)
        if user_id is None:
            raise MatrixError("M_FORBIDDEN", "Invalid or expired login token")
    else:
        raise MatrixError("M_UNKNOWN", f"Unknown login type {login_type!r}")
    result = await hs.users.login(
        user_id,
        device_id=field(body, "device_id", str),
        device_name=field(body, "initial_device_display_name", str),
        refreshable=field(body, "refresh_token", bool, default=False),
        ip=ip,
        user_agent=request.headers.get("User-Agent"),
    )
    result["home_server"] = hs.config.server_name
    result["well_known"] = {"m.homeserver": {"base_url": hs.config.base_url}}
    return json_response(result)


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    who = await requester(request, allow_guest=True)
    await request.app[HOMESERVER].users.logout(who)
    return json_response({})


@routes.post("/logout/all")
async def logout_all(request: web.Request) -> web.Response:
    who = await requester(request, allow_guest=True)
    await request.app[HOMESERVER].users.logout_all(who.user_id)
    return json_response({})


@routes.post("/refresh", versions=STABLE + ("v1",))
async def refresh(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    body = await read_json(request)
    token = field(body, "refresh_token", str, required=True)
    lifetime = hs.config.registration.refreshable_access_token_lifetime_ms
    return json_response(await hs.users.tokens.refresh(token, lifetime))


@routes.post("/login/get_token", versions=("v1",))
async def get_login_token(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request, allow_empty=True)
    await hs.users.uia.authenticate(body.get("auth"), flows=PASSWORD_FLOWS, operation="get_login_token", user_id=who.user_id)
    lifetime = hs.config.registration.login_token_lifetime_ms
    return json_response(await hs.users.tokens.create_login_token(who.user_id, lifetime))
