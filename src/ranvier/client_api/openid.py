"""OpenID: a token that proves the caller's identity to another service, which checks it
at the federation API's GET /_matrix/federation/v1/openid/userinfo."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.routing import Routes

routes = Routes()

#: How long an OpenID token can be exchanged for the user's identity.
OPENID_TOKEN_LIFETIME_MS = 60 * 60 * 1000


@routes.post("/user/{user_id}/openid/request_token")
async def request_token(request: web.Request) -> web.Response:
    """POST /user/{userId}/openid/request_token: an OpenID token for oneself only (403
    M_FORBIDDEN for another user), valid for an hour; the body is `{}`. The token is good
    for the federation userinfo endpoint and nothing else."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    await read_json(request)
    if request.match_info["user_id"] != who.user_id:
        raise MatrixError("M_FORBIDDEN", "You may only request OpenID tokens for yourself")
    token = await hs.users.tokens.create_openid_token(who.user_id, OPENID_TOKEN_LIFETIME_MS)
    return json_response({"access_token": token, "token_type": "Bearer", "matrix_server_name": hs.config.server_name,
                          "expires_in": OPENID_TOKEN_LIFETIME_MS // 1000})
