"""Server discovery and feature negotiation: /versions, .well-known, /capabilities, /health."""

from __future__ import annotations

from aiohttp import web

from ranvier.client_api.admin import is_server_admin
from ranvier.errors import MatrixError
from ranvier.events.room_versions import DEFAULT_ROOM_VERSION, ROOM_VERSIONS
from ranvier.sync.sliding import FEATURE as SLIDING_SYNC
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()

#: The spec versions every endpoint of which this server routes (the rule is in
#: docs/api-coverage.md; tests/integration/test_versions.py checks it against the spec's
#: list of endpoints).
SPEC_VERSIONS = ["r0.6.1"] + [f"v1.{minor}" for minor in range(1, 20)]


@routes.get("/_matrix/client/versions", versions=None)
async def versions(request: web.Request) -> web.Response:
    """GET /_matrix/client/versions: the spec versions this server serves every endpoint of (the
    rule is in docs/api-coverage.md, tested against the spec's endpoint list) and the unstable
    features really served. No token needed."""
    return json_response({"versions": SPEC_VERSIONS, "unstable_features": {SLIDING_SYNC: True}})


@routes.get("/.well-known/matrix/client", versions=None)
async def well_known(request: web.Request) -> web.Response:
    """GET /.well-known/matrix/client: the base URL clients should use (`public_baseurl`). No token
    needed."""
    return json_response({"m.homeserver": {"base_url": request.app[HOMESERVER].config.base_url}})


@routes.get("/.well-known/matrix/policy_server", versions=None)
async def policy_server(request: web.Request) -> web.Response:
    """GET /.well-known/matrix/policy_server: the keys of a policy server at this host;
    404 M_NOT_FOUND, this server is not one."""
    raise MatrixError("M_NOT_FOUND", "No policy server is served here")


@routes.get("/auth_metadata", versions=("v1",))
async def auth_metadata(request: web.Request) -> web.Response:
    """GET /v1/auth_metadata: the OAuth 2.0 authorization server's metadata. 404
    M_UNRECOGNIZED, as the spec asks of a server that does not support the OAuth 2.0 API:
    clients then use the legacy login API (/login, /register)."""
    raise MatrixError("M_UNRECOGNIZED", "This server does not support the OAuth 2.0 API; use /login")


@routes.get("/health", versions=None)
async def health(request: web.Request) -> web.Response:
    """GET /health: `OK` while the server answers; for load balancers and monitoring."""
    return web.Response(text="OK")


@routes.get("/capabilities")
async def capabilities(request: web.Request) -> web.Response:
    """GET /capabilities: what the caller may do here; `m.account_moderation` only for
    server admins."""
    who = await requester(request, allow_guest=True)
    capabilities = {
        "capabilities": {
            "m.change_password": {"enabled": True},
            "m.room_versions": {
                "default": DEFAULT_ROOM_VERSION,
                "available": {version: "stable" for version in ROOM_VERSIONS},
            },
            "m.set_displayname": {"enabled": True},
            "m.set_avatar_url": {"enabled": True},
            "m.3pid_changes": {"enabled": False},
            "m.get_login_token": {"enabled": True},
        }
    }
    if await is_server_admin(request, who):
        capabilities["capabilities"]["m.account_moderation"] = {"lock": True, "suspend": True}
    return json_response(capabilities)


@routes.get("/.well-known/matrix/support", versions=None)
async def support(request: web.Request) -> web.Response:
    """GET /.well-known/matrix/support: the admin contacts and support page of the config's
    `support` section; 404 M_NOT_FOUND when neither is configured."""
    config = request.app[HOMESERVER].config.support
    if not config.contacts and not config.support_page:
        raise MatrixError("M_NOT_FOUND", "No support information is configured on this server")
    answer: dict = {}
    if config.contacts:
        answer["contacts"] = [
            {key: value for key, value in (("role", c.role), ("matrix_id", c.matrix_id),
                                           ("email_address", c.email_address)) if value}
            for c in config.contacts
        ]
    if config.support_page:
        answer["support_page"] = config.support_page
    return json_response(answer)
