"""Who is calling: the access token from `Authorization: Bearer` or `?access_token=`."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.requester import Requester
from ranvier.web.app import HOMESERVER
from ranvier.web.http import client_ip


def access_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError("M_MISSING_TOKEN", "Authorization header must be 'Bearer <token>'")
        return token.strip()
    return request.query.get("access_token")


async def requester(request: web.Request, *, allow_guest: bool = False) -> Requester:
    """Authenticate the request or raise M_MISSING_TOKEN / M_UNKNOWN_TOKEN."""
    token = access_token(request)
    if not token:
        raise MatrixError("M_MISSING_TOKEN", "Missing access token")
    who = await request.app[HOMESERVER].users.tokens.authenticate(
        token, client_ip(request), request.headers.get("User-Agent")
    )
    if who.is_guest and not allow_guest:
        raise MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guest accounts cannot use this endpoint")
    return who
