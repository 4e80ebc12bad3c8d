"""Registration and login of the draft: POST /register, POST /unregister, GET/POST /login
and the HTML login fallback, GET /login/fallback."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.legacy_api.ids import user_from_draft, user_to_draft
from ranvier.legacy_api.routing import PREFIX, DraftRoutes, done
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import client_ip, json_response, read_json
from ranvier.web.params import field

routes = DraftRoutes()

PASSWORD = "m.login.password"
#: The draft's other login types and what each would need from outside the server.
UNCONFIGURED_LOGINS = {
    "m.login.oauth2": "an OAuth2 provider",
    "m.login.email.code": "an e-mail sender (for the code) and e-mail addresses linked to accounts",
    "m.login.email.url": "an e-mail sender (for the link) and e-mail addresses linked to accounts",
}
_FALLBACK_PAGE = resources.files("ranvier.legacy_api").joinpath("login_fallback.html").read_text("utf-8")


@routes.post("/register")
async def register(request: web.Request) -> web.Response:
    """POST /register: {} lets the server choose the user ID, {"user_id": ...} asks for one
    (either ID form, or a localpart); M_USER_IN_USE when taken. An optional "password" (not
    in the draft) lets the account log in again later. Refused with M_FORBIDDEN unless
    registration is open. Answers {user_id, access_token}."""
    hs = request.app[HOMESERVER]
    body = await read_json(request, allow_empty=True)
    if hs.config.registration.mode != "open":
        raise MatrixError("M_FORBIDDEN", "Registration is not open on this server")
    wanted = body.get("user_id")
    localpart = None
    if wanted is not None:
        user_id = user_from_draft(wanted, hs.config.server_name)
        localpart, domain = user_id[1:].split(":", 1)
        if domain != hs.config.server_name:
            raise MatrixError("M_BAD_JSON", f"user_id must be of this server, {hs.config.server_name}")
        localpart = localpart.lower()
        await hs.users.check_username(localpart)
    password = field(body, "password", str)
    ip = client_ip(request)
    hs.limits.registration.check(f"ip:{ip}")
    result = await hs.users.register(localpart, password, ip=ip, user_agent=request.headers.get("User-Agent"))
    return json_response({"user_id": user_to_draft(result["user_id"]), "access_token": result["access_token"]})


@routes.post("/unregister")
async def unregister(request: web.Request) -> web.Response:
    """POST /unregister: deactivate the caller's account for good (its tokens stop working,
    its user ID is never given out again) and leave every room."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    await read_json(request, allow_empty=True)
    await hs.users.deactivate(who.user_id)
    await hs.rooms.leave_all_rooms(who.user_id)
    return done()


@routes.get("/login")
async def login_info(request: web.Request) -> web.Response:
    """GET /login: LoginInfo. One stage, password; "stages" would list several, and no login
    of this server has more than one."""
    return json_response({"type": PASSWORD})


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    """POST /login: m.login.password with "user" (either ID form, or a localpart) and
    "password" answers {access_token, user_id}; a wrong one is M_FORBIDDEN. The draft's
    OAuth2 and e-mail logins are refused with M_BAD_JSON naming what is not configured."""
    hs = request.app[HOMESERVER]
    body = await read_json(request)
    ip = client_ip(request)
    hs.limits.login.check(f"ip:{ip}")
    login_type = field(body, "type", str, required=True)
    if login_type in UNCONFIGURED_LOGINS:
        raise MatrixError("M_BAD_JSON", f"{login_type} needs {UNCONFIGURED_LOGINS[login_type]}, and this server "
                                        f"has none configured; GET /login names the login it offers ({PASSWORD})")
    if login_type != PASSWORD:
        raise MatrixError("M_BAD_JSON", f"Unknown login type {login_type!r}; this server offers {PASSWORD}")
    user_id = user_from_draft(field(body, "user", str, required=True), hs.config.server_name)
    password = field(body, "password", str, required=True)
    user_id = await hs.users.check_password_login(user_id, password, ip)
    result = await hs.users.login(user_id, device_id=None, device_name=None, refreshable=False, ip=ip,
                                  user_agent=request.headers.get("User-Agent"))
    return json_response({"access_token": result["access_token"], "user_id": user_to_draft(user_id)})


@routes.get("/login/fallback")
async def login_fallback(request: web.Request) -> web.Response:
    """GET /login/fallback: an HTML page that performs the whole login in a browser (it reads
    GET /login and submits POST /login); no token needed."""
    return web.Response(text=_FALLBACK_PAGE.replace("{{PREFIX}}", PREFIX), content_type="text/html")
