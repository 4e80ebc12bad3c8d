"""Logging in and out: /login (password, token and application service), /logout, /refresh, /login/get_token."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.users.service import login_user, password_credentials
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import APPLICATION_SERVICE_LOGIN, calling_service, requester, user_interactive_auth
from ranvier.web.http import client_ip, json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import STABLE, Routes

routes = Routes()

PASSWORD_FLOWS = [["m.login.password"]]


@routes.get("/login")
async def login_flows(request: web.Request) -> web.Response:
    """GET /login: the login types, password and token (no SSO: no provider is configured),
    and `m.login.application_service` when an application service is registered."""
    flows = [{"type": "m.login.password"}, {"type": "m.login.token", "get_login_token": True}]
    if request.app[HOMESERVER].appservices:
        flows.append({"type": APPLICATION_SERVICE_LOGIN})
    return json_response({"flows": flows})


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    """POST /login: `m.login.password` (identifier `m.id.user` or legacy `user`) or
    `m.login.token`; rate-limited per address, failed attempts per (account, address) and
    per address (a stranger cannot lock the owner out); deactivated accounts 403
    M_USER_DEACTIVATED, locked ones 401 M_USER_LOCKED. A known `device_id` is reused (its old
    tokens revoked, its name and keys kept: `initial_device_display_name` names new devices only).
    `m.login.application_service`: an application service (its as_token in Authorization)
    logs in one of its users, a device of their own (403 M_FORBIDDEN outside its namespaces)."""
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
    elif login_type == APPLICATION_SERVICE_LOGIN:
        user_id = _service_login_user(request, body)
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


def _service_login_user(request: web.Request, body: dict[str, Any]) -> str:
    """The user an application service logs in (see `login`)."""
    hs = request.app[HOMESERVER]
    service = calling_service(request, "Logging in")
    user_id = hs.users.user_id_from_login(login_user(body))
    if not service.claims_user(user_id):
        raise MatrixError("M_FORBIDDEN", "That user is not in this application service's namespaces")
    return user_id


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    """POST /logout: revoke the token used and delete its device (its keys, pending to-device
    messages and pushers go with it); open to locked accounts."""
    who = await requester(request, allow_locked=True)
    await request.app[HOMESERVER].users.logout(who)
    return json_response({})


@routes.post("/logout/all")
async def logout_all(request: web.Request) -> web.Response:
    """POST /logout/all: revoke every token and device of the caller (their keys, pending
    to-device messages and pushers go with them); open to locked accounts."""
    who = await requester(request, allow_locked=True)
    await request.app[HOMESERVER].users.logout_all(who.user_id)
    return json_response({})


@routes.post("/refresh", versions=STABLE + ("v1",))
async def refresh(request: web.Request) -> web.Response:
    """POST /refresh: a new access and refresh token for a refresh token, which is spent;
    unknown 401 M_UNKNOWN_TOKEN, locked account 401 M_USER_LOCKED (the old tokens kept)."""
    hs = request.app[HOMESERVER]
    body = await read_json(request)
    token = field(body, "refresh_token", str, required=True)
    lifetime = hs.config.registration.refreshable_access_token_lifetime_ms
    return json_response(await hs.users.tokens.refresh(token, lifetime))


@routes.post("/login/get_token", versions=("v1",))
async def get_login_token(request: web.Request) -> web.Response:
    """POST /v1/login/get_token: a short-lived `m.login.token` for another device, after
    re-authentication with the password (UIA session bound to this request)."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request, allow_empty=True)
    await user_interactive_auth(request, body, who, flows=PASSWORD_FLOWS, operation="get_login_token")
    lifetime = hs.config.registration.login_token_lifetime_ms
    return json_response(await hs.users.tokens.create_login_token(who.user_id, lifetime))


@routes.get("/login/sso/redirect")
@routes.get("/login/sso/redirect/{idp_id}")
async def sso_redirect(request: web.Request) -> web.Response:
    """GET /login/sso/redirect, GET /login/sso/redirect/{idpId}: 404 M_UNRECOGNIZED, no
    single sign-on provider is configured on this server (GET /login offers none)."""
    raise MatrixError("M_UNRECOGNIZED", "Single sign-on is not configured on this server: log in with a password")
