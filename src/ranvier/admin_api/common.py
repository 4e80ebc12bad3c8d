"""What every admin endpoint shares: server admins only, every call audited, and the
helpers for Synapse's parameters (local user IDs, offset paging, sort direction).

An admin route table (`AdminRoutes`) wraps each handler: the caller must present the
access token of a server admin (401 without a valid token, 403 `M_FORBIDDEN` for anyone
else), and one line per call goes to the `ranvier.admin` log: who, method, path (never
the query string, which may carry a token) and outcome. The handler is called as
`handler(request, admin)` with the admin's `Requester`. A NUL character anywhere in the
path or query is refused up front (400 M_INVALID_PARAM), on every engine alike.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.identifiers import InvalidIdentifier, domain_of, parse_user_id
from ranvier.requester import Requester
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.params import query_int, query_str
from ranvier.web.routing import Route, Routes

audit_log = logging.getLogger("ranvier.admin")

SYNAPSE_ADMIN = "/_synapse/admin"

AdminHandler = Callable[[web.Request, Requester], Awaitable[web.StreamResponse]]


class AdminRoutes(Routes):
    """A route table whose paths are mounted as written and whose handlers only serve
    server admins, each call audited."""

    def route(self, method: str, path: str, *, versions=None):
        def register(handler: AdminHandler) -> AdminHandler:
            self.entries.append(Route(method, path, _admin_only(handler), None))
            return handler

        return register


def _admin_only(handler: AdminHandler):
    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        who = "-"
        try:
            admin = await requester(request)
            who = admin.user_id
            account = await request.app[HOMESERVER].users.store.get_account(admin.user_id)
            if account is None or not account.is_admin:
                raise MatrixError("M_FORBIDDEN", "You are not a server admin")
            response = await handler(request, admin)
        except MatrixError as exc:
            audit_log.info("admin %s %s %s -> %s %s", who, request.method, request.path, exc.status, exc.errcode)
            raise
        except Exception:
            audit_log.info("admin %s %s %s -> failed", who, request.method, request.path)
            raise
        audit_log.info("admin %s %s %s -> %s", who, request.method, request.path, response.status)
        return response

    return guarded


# -- parameters ------------------------------------------------------------------------


def local_user_id(request: web.Request, user_id: str) -> str:
    """A user ID of this server, or 400 M_INVALID_PARAM (malformed) / M_UNKNOWN (remote)."""
    try:
        parse_user_id(user_id)
    except InvalidIdentifier:
        raise MatrixError("M_INVALID_PARAM", f"{user_id!r} is not a valid user ID") from None
    if domain_of(user_id) != request.app[HOMESERVER].config.server_name:
        raise MatrixError("M_UNKNOWN", "Only local users can be administered here", status=400)
    return user_id


async def existing_user(request: web.Request, user_id: str):
    """The account of a local user, or 404 M_NOT_FOUND."""
    account = await request.app[HOMESERVER].users.store.get_account(local_user_id(request, user_id))
    if account is None:
        raise MatrixError("M_NOT_FOUND", "User not found")
    return account


def paging(request: web.Request, *, default_limit: int = 100, maximum: int = 10_000) -> tuple[int, int]:
    """Synapse's offset paging: (`from`, `limit`), both non-negative integers."""
    start = query_int(request, "from", 0)
    limit = query_int(request, "limit", default_limit, maximum=maximum)
    return start, limit


def direction(request: web.Request) -> bool:
    """True for `dir=b` (backwards), False for `f` or absent."""
    value = query_str(request, "dir", default="f")
    if value not in ("f", "b"):
        raise MatrixError("M_INVALID_PARAM", "dir must be f or b")
    return value == "b"


def order_by(request: web.Request, allowed: tuple[str, ...], default: str) -> str:
    value = query_str(request, "order_by", default=default)
    if value not in allowed:
        raise MatrixError("M_INVALID_PARAM", f"order_by must be one of {', '.join(allowed)}")
    return value


def next_token(start: int, count: int, total: int) -> dict[str, Any]:
    """`next_token` when more rows follow this page (as Synapse: absent at the end)."""
    return {"next_token": str(start + count)} if start + count < total else {}


