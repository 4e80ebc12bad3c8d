"""Account registration: POST /register with user-interactive auth, availability, tokens."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.http import client_ip, json_response, read_json
from ranvier.web.params import field, query_str
from ranvier.web.routing import Routes

routes = Routes()


@routes.post("/register")
async def register(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    body = await read_json(request, allow_empty=True)
    kind = request.query.get("kind", "user")
    if kind not in ("user", "guest"):
        raise MatrixError("M_INVALID_PARAM", "kind must be 'user' or 'guest'")
    device_id = field(body, "device_id", str)
    device_name = field(body, "initial_device_display_name", str)
    inhibit_login = field(body, "inhibit_login", bool, default=False)
    refreshable = field(body, "refresh_token", bool, default=False)
    ip = client_ip(request)
    user_agent = request.headers.get("User-Agent")
    if kind == "guest":
        if not hs.config.registration.guest_access:
            raise MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guest access is disabled")
        hs.limits.registration.check(f"ip:{ip}")
        result = await hs.users.register(
            None, None, guest=True, device_id=device_id, device_name=device_name,
            refreshable=refreshable, ip=ip, user_agent=user_agent,
        )
        return json_response(result)

    flows = hs.users.registration_flows()
    if not flows:
        raise MatrixError("M_FORBIDDEN", "Registration is disabled on this server")
    username = field(body, "username", str)
    password = field(body, "password", str)
    if username is not None:
        username = username.lower()
        await hs.users.check_username(username)
    if password is None:
        raise MatrixError("M_MISSING_PARAM", "Missing required field: password")
    hs.users.check_password_strength(password)
    completed = await hs.users.uia.authenticate(body.get("auth"), flows=flows, operation="register")
    hs.limits.registration.check(f"ip:{ip}")
    result = await hs.users.register(
        username, password, device_id=device_id, device_name=device_name, inhibit_login=inhibit_login,
        refreshable=refreshable, registration_token=completed.get("m.login.registration_token"),
        ip=ip, user_agent=user_agent,
    )
    return json_response(result)


@routes.get("/register/available")
async def available(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    username = query_str(request, "username", required=True)
    hs.limits.registration.check(f"available:{client_ip(request)}", cost=0.1)
    await hs.users.check_username(username.lower())
    return json_response({"available": True})


@routes.get("/register/m.login.registration_token/validity", versions=("v1",))
async def registration_token_validity(request: web.Request) -> web.Response:
    hs = request.app[HOMESERVER]
    if hs.config.registration.mode == "closed":
        raise MatrixError("M_FORBIDDEN", "Registration is disabled on this server")
    token = query_str(request, "token", required=True)
    hs.limits.registration.check(f"token:{client_ip(request)}", cost=0.1)
    return json_response({"valid": await hs.users.registration_token_valid(token)})
