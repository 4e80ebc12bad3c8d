"""Admin API: registration tokens (list, details, create, update, delete), as Synapse's.

A token is used up when an account is made with it, so `pending` (registrations under
way) is always 0 here.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from aiohttp import web

from ranvier.admin_api.common import SYNAPSE_ADMIN, AdminRoutes
from ranvier.errors import MatrixError
from ranvier.requester import Requester
from ranvier.users.tokens import now_ms
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field, query_bool

routes = AdminRoutes()

TOKENS = f"{SYNAPSE_ADMIN}/v1/registration_tokens"
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "._~-"
MAX_TOKEN_LENGTH = 64


def _token_json(row: tuple[Any, ...]) -> dict[str, Any]:
    token, uses_allowed, completed, expiry_ts = row
    return {"token": token, "uses_allowed": uses_allowed, "pending": 0, "completed": completed,
            "expiry_time": expiry_ts}


def _is_valid(row: tuple[Any, ...], now: int) -> bool:
    _, uses_allowed, completed, expiry_ts = row
    return (uses_allowed is None or completed < uses_allowed) and (expiry_ts is None or expiry_ts > now)


def _limit(body: dict[str, Any], name: str) -> int | None:
    value = field(body, name, int)
    if value is not None and value < 0:
        raise MatrixError("M_INVALID_PARAM", f"{name} must be a non-negative integer or null")
    return value


def _expiry(body: dict[str, Any]) -> int | None:
    expiry = field(body, "expiry_time", int)
    if expiry is not None and expiry < now_ms():
        raise MatrixError("M_INVALID_PARAM", "expiry_time must not be in the past")
    return expiry


async def _existing(request: web.Request) -> tuple[Any, ...]:
    row = await request.app[HOMESERVER].user_admin.registration_token(request.match_info["token"])
    if row is None:
        raise MatrixError("M_NOT_FOUND", "No such registration token")
    return row


@routes.get(TOKENS)
async def list_tokens(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/registration_tokens: every token; `valid=true` only the
    usable ones, `valid=false` only the used-up or expired ones."""
    rows = await request.app[HOMESERVER].users.store.list_registration_tokens()
    if "valid" in request.query:
        wanted, now = query_bool(request, "valid", True), now_ms()
        rows = [row for row in rows if _is_valid(row, now) == wanted]
    return json_response({"registration_tokens": [_token_json(row) for row in rows]})


@routes.get(f"{TOKENS}/{{token}}")
async def get_token(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/registration_tokens/{token}: one token (404 if unknown)."""
    return json_response(_token_json(await _existing(request)))


@routes.post(f"{TOKENS}/new")
async def new_token(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/registration_tokens/new: `token` (up to 64 of A-Z a-z 0-9
    . _ ~ -; 400 if it exists) or a random one of `length` (1-64, default 16);
    `uses_allowed` and `expiry_time` (null: unlimited)."""
    hs = request.app[HOMESERVER]
    body = await read_json(request, allow_empty=True)
    token = field(body, "token", str)
    length = field(body, "length", int, default=16)
    uses_allowed, expiry = _limit(body, "uses_allowed"), _expiry(body)
    if token is None:
        if not 1 <= length <= MAX_TOKEN_LENGTH:
            raise MatrixError("M_INVALID_PARAM", f"length must be between 1 and {MAX_TOKEN_LENGTH}")
        token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))
    elif not token or len(token) > MAX_TOKEN_LENGTH or any(c not in _TOKEN_ALPHABET for c in token):
        raise MatrixError("M_INVALID_PARAM", f"token must be 1 to {MAX_TOKEN_LENGTH} of A-Z a-z 0-9 . _ ~ -")
    await hs.users.create_registration_token(token, uses_allowed, expiry)
    return json_response(_token_json((token, uses_allowed, 0, expiry)))


@routes.put(f"{TOKENS}/{{token}}")
async def update_token(request: web.Request, admin: Requester) -> web.Response:
    """PUT /_synapse/admin/v1/registration_tokens/{token}: change `uses_allowed` and/or
    `expiry_time` (null lifts the limit; an absent field is unchanged)."""
    hs = request.app[HOMESERVER]
    row = await _existing(request)
    body = await read_json(request, allow_empty=True)
    changes: dict[str, Any] = {}
    if "uses_allowed" in body:
        changes["uses_allowed"] = _limit(body, "uses_allowed")
    if "expiry_time" in body:
        changes["expiry_ts"] = _expiry(body)
    if changes:
        await hs.user_admin.update_registration_token(row[0], changes)
    return json_response(_token_json(await _existing(request)))


@routes.delete(f"{TOKENS}/{{token}}")
async def delete_token(request: web.Request, admin: Requester) -> web.Response:
    """DELETE /_synapse/admin/v1/registration_tokens/{token}: delete it (404 if unknown)."""
    row = await _existing(request)
    await request.app[HOMESERVER].user_admin.delete_registration_token(row[0])
    return json_response({})
