"""Account registration: POST /register with user-interactive auth, guest accounts and their
upgrade, availability, registration tokens."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.requester import Requester
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import APPLICATION_SERVICE_LOGIN, access_token, calling_service
from ranvier.web.http import client_ip, json_response, read_json
from ranvier.web.params import field, query_str
from ranvier.web.routing import Routes

routes = Routes()


@routes.post("/register")
async def register(request: web.Request) -> web.Response:
    """POST /register: a new account, through user-interactive auth (`m.login.dummy` when
    registration is open, `m.login.registration_token`); 403 when registration is closed.
    A request without `auth` (even `{}`) gets the 401 with flows, params and session.
    `username` is optional (a localpart is generated without it), `password` is required
    once the flow is complete. A retry with a session that has registered its account
    answers with that account again (logged in anew) and never makes a second one.
    `kind=guest` (when guest access is enabled) ignores everything but
    `initial_device_display_name`. A guest upgrades to a full account, same user ID, by
    registering with its access token as `guest_access_token` (or in Authorization);
    `username`, if given, must be its localpart. A username in an application service's
    exclusive namespace is refused (400 M_EXCLUSIVE). An application service registers its
    users with `type: m.login.application_service` and its as_token, even when registration
    is closed: no auth, no password, only names in its namespaces (M_EXCLUSIVE otherwise).
    """
    hs = request.app[HOMESERVER]
    body = await read_json(request, allow_empty=True)
    kind = request.query.get("kind", "user")
    if kind not in ("user", "guest"):
        raise MatrixError("M_INVALID_PARAM", "kind must be 'user' or 'guest'")
    device_name = field(body, "initial_device_display_name", str)
    ip = client_ip(request)
    user_agent = request.headers.get("User-Agent")
    if kind == "guest":
        if not hs.config.registration.guest_access:
            raise MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guest access is disabled")
        hs.limits.registration.check(f"ip:{ip}")
        result = await hs.users.register(None, None, guest=True, device_name=device_name, ip=ip, user_agent=user_agent)
        return json_response(result)

    if body.get("type") == APPLICATION_SERVICE_LOGIN:
        return json_response(await _register_for_service(request, body))
    flows = hs.users.registration_flows()
    if not flows:
        raise MatrixError("M_FORBIDDEN", "Registration is disabled on this server")
    guest = await _upgrading_guest(request, body)
    username = field(body, "username", str)
    password = field(body, "password", str)
    if guest is not None:
        guest_localpart = guest.user_id[1:].split(":", 1)[0]
        if username is not None and username.lower() != guest_localpart:
            raise MatrixError("M_INVALID_PARAM", f"A guest keeps its user ID: username must be {guest_localpart!r}")
    elif username is not None:
        username = username.lower()
        hs.appservices.check_user_not_reserved(await hs.users.check_username(username), None)
    if password is not None:
        hs.users.check_password_strength(password)
    login: dict[str, Any] = {
        "device_id": field(body, "device_id", str), "device_name": device_name,
        "refreshable": field(body, "refresh_token", bool, default=False), "ip": ip, "user_agent": user_agent,
    }
    inhibit_login = field(body, "inhibit_login", bool, default=False)
    session = await hs.users.uia.authenticate(body.get("auth"), flows=flows, operation="register")
    if session.registered_user_id is not None:
        result = await hs.users.resume_registration(session.registered_user_id, inhibit_login=inhibit_login, **login)
        return json_response(result)
    if password is None:
        raise MatrixError("M_MISSING_PARAM", "Missing required field: password")
    hs.limits.registration.check(f"ip:{ip}")
    token = session.completed.get("m.login.registration_token")
    if guest is not None:
        result = await hs.users.upgrade_guest(guest.user_id, password, uia_session=session.session_id,
                                              inhibit_login=inhibit_login, registration_token=token, **login)
    else:
        result = await hs.users.register(username, password, inhibit_login=inhibit_login, registration_token=token,
                                         uia_session=session.session_id, **login)
    return json_response(result)


async def _register_for_service(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    """An application service's registration of one of its users (see `register`)."""
    hs = request.app[HOMESERVER]
    service = calling_service(request, "Registering")
    username = field(body, "username", str, required=True).lower()
    user_id = hs.users.user_id_from_login(username)
    if not service.claims_user(user_id):
        raise MatrixError("M_EXCLUSIVE", "That user ID is not in this application service's namespaces")
    return await hs.users.register(
        username, None, device_id=field(body, "device_id", str),
        device_name=field(body, "initial_device_display_name", str),
        inhibit_login=field(body, "inhibit_login", bool, default=False),
        refreshable=field(body, "refresh_token", bool, default=False),
        ip=client_ip(request), user_agent=request.headers.get("User-Agent"))


async def _upgrading_guest(request: web.Request, body: dict[str, Any]) -> Requester | None:
    """The guest a registration upgrades: the one whose token is `guest_access_token`
    (403 if that is no guest's token), or in Authorization (used only if it is a guest's)."""
    tokens = request.app[HOMESERVER].users.tokens
    seen_from = (client_ip(request), request.headers.get("User-Agent"))
    guest_token = field(body, "guest_access_token", str)
    if guest_token is not None:
        try:
            who = await tokens.authenticate(guest_token, *seen_from)
        except MatrixError:
            who = None
        if who is None or not who.is_guest:
            raise MatrixError("M_FORBIDDEN", "guest_access_token is not the access token of a guest account")
        return who
    header_token = access_token(request)
    if header_token:
        try:
            who = await tokens.authenticate(header_token, *seen_from)
        except MatrixError:
            return None
        return who if who.is_guest else None
    return None


@routes.get("/register/available")
async def available(request: web.Request) -> web.Response:
    """GET /register/available: whether a username can be registered (M_INVALID_USERNAME,
    M_USER_IN_USE, or M_EXCLUSIVE in an application service's exclusive namespace,
    otherwise); rate-limited per address."""
    hs = request.app[HOMESERVER]
    username = query_str(request, "username", required=True)
    hs.limits.registration.check(f"available:{client_ip(request)}", cost=0.1)
    user_id = await hs.users.check_username(username.lower())
    hs.appservices.check_user_not_reserved(user_id, None)
    return json_response({"available": True})


@routes.get("/register/m.login.registration_token/validity", versions=("v1",))
async def registration_token_validity(request: web.Request) -> web.Response:
    """GET /v1/register/m.login.registration_token/validity: whether a registration token
    can still be used; 403 when registration is closed; rate-limited per address."""
    hs = request.app[HOMESERVER]
    if hs.config.registration.mode == "closed":
        raise MatrixError("M_FORBIDDEN", "Registration is disabled on this server")
    token = query_str(request, "token", required=True)
    hs.limits.registration.check(f"token:{client_ip(request)}", cost=0.1)
    return json_response({"valid": await hs.users.registration_token_valid(token)})
