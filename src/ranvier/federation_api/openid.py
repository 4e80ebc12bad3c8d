"""OpenID userinfo: another service exchanges an OpenID token from this server's
POST /user/{userId}/openid/request_token for the identity of its user.

Unlike the rest of the federation API the caller is not a homeserver, so the request is
not signed: the OpenID token is the whole proof.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response
from ranvier.web.params import query_str
from ranvier.web.routing import Routes

routes = Routes()

FEDERATION_PREFIX = "/_matrix/federation"


@routes.get(f"{FEDERATION_PREFIX}/v1/openid/userinfo", versions=None)
async def userinfo(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/openid/userinfo?access_token=: `{"sub": user ID}` of an
    OpenID token's owner; 401 M_UNKNOWN_TOKEN for a token unknown, expired, or of a
    deactivated or locked account (an access token of the client API is no OpenID token)."""
    token = query_str(request, "access_token", required=True)
    user_id = await request.app[HOMESERVER].users.tokens.openid_token_owner(token)
    if user_id is None:
        raise MatrixError("M_UNKNOWN_TOKEN", "Access token unknown or expired")
    return json_response({"sub": user_id})
